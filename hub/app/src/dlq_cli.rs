//! `hub dlq list|show|replay|discard`: the dead letters, for the operator on call.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use hub_config::Loaded;
use hub_state::{DeadLetterFilter, StateStore};

use crate::config::HubConfig;

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Dead letters, newest first.
    List {
        /// Only this route, e.g. hotline12345/sign.
        #[arg(long)]
        route: Option<String>,
        /// Only this reason code, e.g. EGRESS_PARTNER_REFUSED.
        #[arg(long)]
        reason: Option<String>,
        /// pending, replayed or discarded.
        #[arg(long)]
        status: Option<String>,
        /// A message id or the partner's object id (ticket number, licence number).
        #[arg(long)]
        about: Option<String>,
        /// Dead-lettered at or after: RFC 3339 time, or an age such as 30m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Dead-lettered before: RFC 3339 time, or an age.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full (personal fields stay sealed).
    Show { id: String },
    /// Send a pending dead letter through its route again, with its original message id.
    Replay {
        id: String,
        /// Who is replaying (recorded in the audit log). Default: cli:$USER.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Mark a pending dead letter as discarded (it is kept; the decision is audited).
    Discard {
        id: String,
        /// Why it is discarded.
        #[arg(long)]
        note: String,
        #[arg(long)]
        actor: Option<String>,
    },
}

/// `30m`, `2h`, `7d` back from now, or an RFC 3339 time → Unix ms.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time nor an age like 30m, 2h, 7d"))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: the age unit must be s, m, h or d")),
    };
    Ok(chrono::Utc::now().timestamp_millis() - n * ms)
}

fn actor_of(given: Option<String>) -> String {
    given.unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    })
}

fn when(ms: i64) -> String {
    use chrono::TimeZone;
    hub_bus::shanghai()
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub async fn run(loaded: Loaded<HubConfig>, action: DlqAction) -> ExitCode {
    let cfg = &loaded.config;
    let base = loaded.resolve(Path::new("."));
    let state = match StateStore::connect(&cfg.state, &base).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let catalog = match hub_contracts::load_dir(&loaded.resolve(&cfg.contracts.dir)) {
        Ok(c) => c,
        Err(p) => {
            for p in &p {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    let code = match action {
        DlqAction::List {
            route,
            reason,
            status,
            about,
            since,
            until,
            limit,
            json,
        } => {
            let since_ms = match since.as_deref().map(parse_time).transpose() {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("--since: {e}");
                    return ExitCode::from(2);
                }
            };
            let until_ms = match until.as_deref().map(parse_time).transpose() {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("--until: {e}");
                    return ExitCode::from(2);
                }
            };
            let filter = DeadLetterFilter {
                route,
                reason_code: reason,
                status,
                about,
                since_ms,
                until_ms,
                limit,
            };
            match hub_egress::dlq::list(&state, &filter).await {
                Ok(rows) if json => {
                    for r in &rows {
                        let line = serde_json::json!({
                            "id": r.id, "route": r.route, "reason_code": r.reason_code,
                            "partner_code": r.partner_code, "attempts": r.attempts,
                            "object_id": r.object_id, "original_message_id": r.original_message_id,
                            "status": r.status, "dead_lettered_at_ms": r.dead_lettered_at_ms,
                        });
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Ok(rows) => {
                    println!(
                        "{:<36}  {:<19}  {:<28} {:<32} {:>3}  {:<9}  对象 / object",
                        "死信 / dead letter",
                        "时间 / at",
                        "路由 / route",
                        "原因 / reason",
                        "n",
                        "status"
                    );
                    for r in &rows {
                        println!(
                            "{:<36}  {:<19}  {:<28} {:<32} {:>3}  {:<9}  {}",
                            r.id,
                            when(r.dead_lettered_at_ms),
                            r.route,
                            r.reason_code,
                            r.attempts,
                            r.status,
                            r.object_id
                        );
                    }
                    println!("共 {n} 条 / {n} dead letter(s)", n = rows.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        DlqAction::Show { id } => {
            match hub_egress::dlq::show(&cfg.bus, &catalog, &state, &id).await {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        DlqAction::Replay { id, actor } => {
            let producer = match hub_bus::Producer::new(&cfg.bus) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            let actor = actor_of(actor);
            match hub_egress::dlq::replay(&cfg.bus, &catalog, &producer, &state, &id, &actor).await
            {
                Ok(d) => {
                    println!(
                        "已重放 / replayed: {} → {} (原消息 / message {})",
                        d.id, d.route, d.original_message_id
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        DlqAction::Discard { id, note, actor } => {
            let actor = actor_of(actor);
            match hub_egress::dlq::discard(&state, &id, &actor, &note).await {
                Ok(d) => {
                    println!("已丢弃 / discarded: {} ({})", d.id, d.route);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    };
    state.close().await;
    code
}
