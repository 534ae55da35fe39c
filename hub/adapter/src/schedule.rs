//! When a pull job runs: a fixed interval or a cron pattern (seconds optional, evaluated in
//! Asia/Shanghai time), plus random jitter, limited to active hours if the adapter says so.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveTime, Timelike};
use croner::parser::CronParser;
use croner::Cron;

/// Parses a cron pattern (5 or 6 fields; the first of 6 is seconds).
pub fn parse_cron(pattern: &str) -> Result<Cron, String> {
    CronParser::new().parse(pattern).map_err(|e| e.to_string())
}

/// `HH:MM-HH:MM` (the end may be `24:00`; a start after the end spans midnight).
pub fn parse_hours(text: &str) -> Option<(NaiveTime, Option<NaiveTime>)> {
    let (a, b) = text.split_once('-')?;
    let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let end = match b.trim() {
        "24:00" => None,
        e => Some(NaiveTime::parse_from_str(e, "%H:%M").ok()?),
    };
    Some((start, end))
}

/// Is `now` (local time) inside the active hours?
pub fn within_hours(hours: &(NaiveTime, Option<NaiveTime>), now: &DateTime<FixedOffset>) -> bool {
    let t = now.time().with_nanosecond(0).unwrap_or(now.time());
    match hours {
        (start, None) => t >= *start,
        (start, Some(end)) if start <= end => t >= *start && t < *end,
        // Spans midnight, e.g. 22:00-06:00.
        (start, Some(end)) => t >= *start || t < *end,
    }
}

/// A job's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

impl Schedule {
    /// How long from `now` until the next run (before jitter).
    pub fn until_next(&self, now: &DateTime<FixedOffset>) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(c) => match c.find_next_occurrence(now, false) {
                Ok(next) => (next - *now).to_std().unwrap_or(Duration::ZERO),
                // A pattern that never matches again: check once an hour rather than spin.
                Err(_) => Duration::from_secs(3_600),
            },
        }
    }
}

/// Adds up to `jitter` of random delay.
pub fn with_jitter(d: Duration, jitter: Duration) -> Duration {
    let ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return d;
    }
    d + Duration::from_millis(rand::random_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn cron_with_and_without_seconds() {
        let c = parse_cron("0 */5 * * * *").unwrap();
        let s = Schedule::Cron(Box::new(c));
        assert_eq!(
            s.until_next(&at("2026-11-22T10:03:30+08:00")),
            Duration::from_secs(90)
        );
        let c = parse_cron("30 2 * * *").unwrap();
        let s = Schedule::Cron(Box::new(c));
        assert_eq!(
            s.until_next(&at("2026-11-22T02:00:00+08:00")),
            Duration::from_secs(30 * 60),
            "evaluated in the time's own offset (Shanghai)"
        );
        assert!(parse_cron("not a cron").is_err());
    }

    #[test]
    fn active_hours_including_spans_over_midnight() {
        let day = parse_hours("07:00-22:00").unwrap();
        assert!(within_hours(&day, &at("2026-11-22T07:00:00+08:00")));
        assert!(!within_hours(&day, &at("2026-11-22T22:00:00+08:00")));
        let night = parse_hours("22:00-06:00").unwrap();
        assert!(within_hours(&night, &at("2026-11-22T23:30:00+08:00")));
        assert!(within_hours(&night, &at("2026-11-22T05:59:00+08:00")));
        assert!(!within_hours(&night, &at("2026-11-22T12:00:00+08:00")));
        let all = parse_hours("00:00-24:00").unwrap();
        assert!(within_hours(&all, &at("2026-11-22T23:59:59+08:00")));
        assert!(parse_hours("7-22").is_none());
    }
}
