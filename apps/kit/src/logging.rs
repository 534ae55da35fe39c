//! Structured logs with `tracing`, configured by `hub-config`'s `[log]` section as the hub's
//! are: one JSON object per line by default, to stderr. Personal data never goes into a log
//! field; apps log ids, codes and counts.

use hub_config::sections::{LogFormat, LogSection};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (a second call keeps the first).
pub fn init(section: &LogSection) {
    let filter = EnvFilter::try_new(&section.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match section.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
