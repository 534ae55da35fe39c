//! `hotline12345-simulator`: runs the 12345 platform simulator beside a local hub.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hotline12345_simulator::generate::{to_gbk_xml, Generator, Unit};
use hotline12345_simulator::{LifecycleConfig, Simulator, SimulatorConfig, TicketBatch};
use sim_kit::cli::{init_logs, parse_duration, push_loop};
use tracing::info;

/// 12345 市民服务热线平台模拟器 / a simulator of the city 12345 hotline platform.
#[derive(Parser)]
#[command(name = "hotline12345-simulator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the platform's APIs and push tickets to the hub.
    Serve(Box<ServeArgs>),
    /// Print generated dispatches (JSON, or the XML as UTF-8 text) and exit.
    Sample {
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long)]
        xml: bool,
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the platform's APIs and of the control API (/sim/..., local use only).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9481")]
    listen: SocketAddr,
    /// The hub's base URL (its gateway).
    #[arg(long, env = "SIM_HUB", default_value = "http://127.0.0.1:9480")]
    hub: String,
    /// The platform's app id at the hub (ops/hub.example.toml [[gateway.apps]]).
    #[arg(long, env = "SIM_APP_ID", default_value = "hotline12345-city")]
    app_id: String,
    /// The secret the platform signs its pushes with.
    #[arg(
        long,
        env = "SIM_HMAC_SECRET",
        default_value = "dev-only-hotline-secret-change-me",
        hide_env_values = true
    )]
    hmac_secret: String,
    /// The hub's app id at the platform ([partners.hotline12345] app_id).
    #[arg(long, env = "SIM_HUB_APP_ID", default_value = "water-bureau-hub")]
    hub_app_id: String,
    /// The secret the hub signs its deliveries and queries with.
    #[arg(
        long,
        env = "SIM_HUB_HMAC_SECRET",
        default_value = "dev-only-12345-secret-change-me",
        hide_env_values = true
    )]
    hub_hmac_secret: String,
    /// Dispatch a batch this often (e.g. 10s, 500ms, 2m); 0 dispatches nothing by itself.
    #[arg(long, env = "SIM_PUSH_EVERY", default_value = "10s", value_parser = parse_duration)]
    push_every: Duration,
    /// Tickets per batch.
    #[arg(long, env = "SIM_BATCH", default_value_t = 3)]
    batch: usize,
    /// Share of dispatches pushed as GBK XML (0.0–1.0).
    #[arg(long, env = "SIM_XML_RATIO", default_value_t = 0.3)]
    xml_ratio: f64,
    /// Do not push: only offer the tickets to the query API (the pull job).
    #[arg(long, env = "SIM_NO_PUSH")]
    no_push: bool,
    /// Follow replies with the platform's close and visit, and urge tickets left unanswered.
    #[arg(long, env = "SIM_LIFECYCLE")]
    lifecycle: bool,
    /// Urge a ticket without a reply this long after dispatch (with --lifecycle).
    #[arg(long, env = "SIM_URGE_AFTER", default_value = "2m", value_parser = parse_duration)]
    urge_after: Duration,
    /// Close a replied ticket this long after the reply (with --lifecycle).
    #[arg(long, env = "SIM_CLOSE_AFTER", default_value = "5s", value_parser = parse_duration)]
    close_after: Duration,
    /// Visit a closed ticket's caller this long after the close (with --lifecycle).
    #[arg(long, env = "SIM_VISIT_AFTER", default_value = "5s", value_parser = parse_duration)]
    visit_after: Duration,
    /// How long after signing a ticket may still be returned.
    #[arg(long, env = "SIM_RETURN_WINDOW", default_value = "24h", value_parser = parse_duration)]
    return_window: Duration,
    /// Approve an extension request this long after it arrives.
    #[arg(long, env = "SIM_EXTENSION_APPROVE_AFTER", default_value = "30s", value_parser = parse_duration)]
    extension_approve_after: Duration,
    /// Leave extension requests pending (approve them through the control API).
    #[arg(long, env = "SIM_EXTENSION_MANUAL")]
    extension_manual: bool,
    /// The query API lists a ticket only this long after its dispatch is made.
    #[arg(long, env = "SIM_INDEX_DELAY", default_value = "0s", value_parser = parse_duration)]
    index_delay: Duration,
    /// Keep the platform's tickets and answered requests in this file across restarts
    /// (ops/run.sh: var/simulator/state.json); without it they live in memory only.
    #[arg(long, env = "SIM_STATE_FILE")]
    state_file: Option<std::path::PathBuf>,
    /// Seed of the generated content.
    #[arg(long, env = "SIM_SEED")]
    seed: Option<u64>,
    /// Run prefix (0–99) inside ticket numbers; default from the seed or random.
    #[arg(long, env = "SIM_TICKET_PREFIX", value_parser = clap::value_parser!(u32).range(0..100))]
    ticket_prefix: Option<u32>,
    /// Log format: text or json.
    #[arg(long, env = "SIM_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sample { count, xml, seed } => {
            let mut g = Generator::new(seed, None, Unit::default());
            for _ in 0..count {
                let v = g.dispatch(hotline12345_simulator::time::now_s());
                if xml {
                    let bytes = to_gbk_xml(&v);
                    println!("{}", encoding_rs::GBK.decode(&bytes).0);
                } else {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(())
        }
        Command::Serve(a) => serve(*a).await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    init_logs(&a.log_format);
    let config = SimulatorConfig {
        listen: a.listen,
        hub_url: Some(a.hub),
        push: !a.no_push,
        platform_app_id: a.app_id,
        platform_hmac_secret: a.hmac_secret,
        hub_app_id: a.hub_app_id,
        hub_hmac_secret: a.hub_hmac_secret,
        return_window: a.return_window,
        extension_approve_after: (!a.extension_manual).then_some(a.extension_approve_after),
        index_delay: a.index_delay,
        lifecycle: LifecycleConfig {
            enabled: a.lifecycle,
            urge_after: Some(a.urge_after),
            close_after: a.close_after,
            visit_after: a.visit_after,
        },
        seed: a.seed,
        ticket_prefix: a.ticket_prefix,
        state_file: a.state_file,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config).await?;
    info!(base_url = sim.base_url(), "control API: GET /sim/tickets, GET /sim/stats, POST /sim/push, POST|DELETE /sim/faults, POST /sim/bad_signatures (local use only)");
    let (batch, ratio) = (a.batch, a.xml_ratio);
    push_loop(a.push_every, || async {
        let made = sim
            .create_tickets(TicketBatch {
                count: batch,
                xml_ratio: ratio,
                dispatched_at: None,
                push: true,
            })
            .await;
        let s = sim.stats();
        info!(
            tickets = made.len(),
            pushes_accepted = s.pushes_accepted,
            pushes_refused = s.pushes_refused,
            pushes_unreachable = s.pushes_unreachable,
            "batch dispatched"
        );
    })
    .await;
    info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
