//! `hub trace <id>`: where a message went, for the operator on call (`docs/trace.md`).

use std::path::Path;
use std::process::ExitCode;

use hub_config::Loaded;
use hub_state::StateStore;

use crate::config::HubConfig;

/// Prints the trace of `id` (message id, correlation id, ticket or licence number). Exit 0
/// when something was found, 1 when nothing was (or the store failed).
pub async fn run(
    loaded: Loaded<HubConfig>,
    id: &str,
    limit: i64,
    json: bool,
    consumers: bool,
) -> ExitCode {
    let cfg = &loaded.config;
    let base = loaded.resolve(Path::new("."));
    let state = match StateStore::connect(&cfg.state, &base).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let bus = consumers.then_some(&cfg.bus);
    let answer = crate::trace::lookup(&state, bus, id, limit).await;
    state.close().await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let found = answer["found"] == serde_json::Value::Bool(true);
    if json {
        println!("{answer}");
    } else if found {
        print!("{}", crate::trace::human(&answer));
    }
    if found {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "TRACE_NOT_FOUND: 未找到 `{id}` 的轨迹 / no trace for `{id}` (a message id, correlation id, \
             ticket or licence number; kept {} days)",
            cfg.trace.retention_days
        );
        ExitCode::from(1)
    }
}
