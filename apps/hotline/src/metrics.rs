//! The hotline app's own metrics, beside the kit's (`app_kit::metrics::KIT`): how many tickets
//! stand overdue or due within 24 hours, sampled from its tables. Documented in
//! `docs/metrics.md`; every series carries `app="hotline"`.

use std::time::Duration;

use app_kit::db::{now_ms, Db, DbError};
use app_kit::metrics::{Kind, Metric};
use app_kit::on_db;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::machine::DUE_SOON_MS;

/// The metrics the hotline app adds to the kit's.
pub const HOTLINE: &[Metric] = &[
    Metric {
        name: "hotline_tickets_overdue",
        kind: Kind::Gauge,
        labels: &[],
        help: "Tickets whose active deadline (sign or handling) has passed (已超期).",
    },
    Metric {
        name: "hotline_tickets_due_within_24h",
        kind: Kind::Gauge,
        labels: &[],
        help: "Tickets whose active deadline falls within the next 24 hours (24小时内到期).",
    },
];

/// How often the deadline gauges are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(30);

/// `(overdue, due within 24 h)` at `now_ms`, as the ticket list's deadline filter counts them.
pub async fn deadline_counts(db: &Db, now_ms: i64) -> Result<(i64, i64), DbError> {
    let overdue = "SELECT COUNT(*) FROM hotline_tickets \
                   WHERE active_deadline_ms IS NOT NULL AND active_deadline_ms < $1";
    let soon = "SELECT COUNT(*) FROM hotline_tickets \
                WHERE active_deadline_ms >= $1 AND active_deadline_ms <= $2";
    let o: i64 = on_db!(db, p => sqlx::query_scalar(overdue).bind(now_ms).fetch_one(p).await?);
    let s: i64 = on_db!(db, p => sqlx::query_scalar(soon)
        .bind(now_ms)
        .bind(now_ms + DUE_SOON_MS)
        .fetch_one(p)
        .await?);
    Ok((o, s))
}

/// Samples the deadline gauges until `stop` is cancelled.
pub async fn sample(db: Db, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match deadline_counts(&db, now_ms()).await {
            Ok((overdue, soon)) => {
                metrics::gauge!("hotline_tickets_overdue").set(overdue as f64);
                metrics::gauge!("hotline_tickets_due_within_24h").set(soon as f64);
            }
            Err(e) => warn!(code = e.code(), error = %e, "deadline gauges not sampled"),
        }
    }
}
