//! What a simulator's command line shares: durations written `500ms`/`10s`/`5m`/`24h`/`2d`,
//! text or JSON logs, and the push loop (a batch every so often until Ctrl-C).

use std::future::Future;
use std::time::Duration;

/// `500ms`, `10s`, `5m`, `24h`, `2d`, or plain seconds (a clap `value_parser`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => return Err(format!("unknown unit `{other}` (ms, s, m, h, d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {s}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Logs to stderr as `text` or `json`; the level from `RUST_LOG` (default `info`).
pub fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The push loop: runs `batch` every `every` (never when zero) until Ctrl-C. Each batch is
/// awaited, so a slow or absent hub slows the partner down instead of piling up pushes; Ctrl-C
/// still interrupts it.
pub async fn push_loop<F, Fut>(every: Duration, mut batch: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = (!every.is_zero()).then(|| tokio::time::interval(every));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = async {
                match ticker.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
                batch().await;
            } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("x").is_err());
    }
}
