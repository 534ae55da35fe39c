//! Partner platforms' clock: Shanghai local time without an offset, `YYYY-MM-DD HH:MM:SS`, the
//! wire format most Chinese government platforms use (12345's, for one). Shanghai has had no
//! daylight saving since 1991, so a fixed +08:00 offset is exact and needs no time-zone
//! database.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// The platform's wire format for times.
pub const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// +08:00.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// `t` as the platform writes it.
pub fn fmt_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&shanghai())
        .format(LOCAL_FORMAT)
        .to_string()
}

/// Reads a platform time; `None` when it is not `YYYY-MM-DD HH:MM:SS`.
pub fn parse_local(s: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), LOCAL_FORMAT).ok()?;
    shanghai()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Now, truncated to whole seconds (the platform's precision), so that a time written and read
/// back compares equal.
pub fn now_s() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// RFC 3339 with +08:00, for history entries and views.
pub fn rfc3339_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&shanghai())
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_round_trip_through_shanghai() {
        let t = parse_local("2026-11-22 09:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T01:30:00+00:00");
        assert_eq!(fmt_local(t), "2026-11-22 09:30:00");
        assert!(parse_local("2026-11-22T09:30:00").is_none());
        assert!(parse_local("").is_none());
    }
}
