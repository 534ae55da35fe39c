//! `hub-bench`: measures the hub's paths against ceilings taken in the same run on the same
//! machine, and reports numbers and ratios (never pass/fail on absolute times: these machines
//! are shared and noisy).
//!
//! * `run smoke|full|profile` ([`harness`]): starts the bare HTTP server and the hub itself,
//!   and measures `ceiling-http`, `ceiling-produce`, the per-stage costs, `ingest-1k`,
//!   `ingest-1k-xml-gbk` and the open-loop pair; a table in markdown and JSON.
//! * `produce` ([`produce`]): the foundation's producer benchmark (burst ceiling and the hub's
//!   send path at given concurrencies).
//! * `mapping` ([`mapping`]): mapping throughput on one core.
//! * `http-sink`: the bare server of `ceiling-http` (the harness starts it; not for people).
//! * `plain-pipeline`: the hub's ingest path as straight code, the server of the
//!   `plain-pipeline` rows ([`plain`]; the harness starts it).
//!
//! Needs a running broker: `ops/bench.sh` starts one, builds in release mode and runs this.

mod egress;
mod harness;
mod hub_stages;
mod loadgen;
mod mapping;
mod payload;
mod plain;
mod procs;
mod produce;
mod report;
mod sink;
mod stages;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "HUB_BENCH_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:19092"
    )]
    bootstrap: String,
    /// Producer `linger.ms` for every scenario, the hub's included (the hub's default is 0).
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The harness: ceilings, per-stage costs and the hub's ingest path in one run.
    Run(Box<harness::RunArgs>),
    /// Mapping throughput on one core: a representative 12345 dispatch ticket as GBK XML and as
    /// JSON, through decode, parse, the VRL program and contract validation (and Avro encoding),
    /// against the bare decode-and-parse of the same bytes measured in the same run.
    Mapping {
        /// Iterations per scenario.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Producer ceiling and the hub's send path.
    Produce {
        /// Records per scenario.
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Concurrent senders for `bus-send` (comma-separated for several runs).
        #[arg(long, default_value = "64,256", value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// Partitions of the benchmark topics.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// The bare HTTP server of `ceiling-http`; prints `listening <addr>`.
    #[command(hide = true)]
    HttpSink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// The server of `plain-pipeline`; prints `listening <addr>` once ready.
    #[command(hide = true)]
    PlainPipeline {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// The repository (contracts, mappings, ops/dev-keyring.toml).
        #[arg(long)]
        repo: std::path::PathBuf,
        /// The topic to produce to.
        #[arg(long)]
        topic: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let bus = produce::section(&args.bootstrap, args.linger_ms);
    let done = match args.command {
        Cmd::Run(run) => match harness::run(*run, &args.bootstrap, args.linger_ms).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                eprintln!("hub-bench: the run did not complete as it should (see the FAIL lines)");
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        },
        Cmd::Mapping { iterations } => mapping::mapping_bench(iterations),
        Cmd::Produce {
            count,
            size,
            concurrency,
            partitions,
            json,
        } => produce::produce_command(&bus, count, size, concurrency, partitions, json).await,
        Cmd::HttpSink { listen } => sink::serve(listen).await,
        Cmd::PlainPipeline {
            listen,
            repo,
            topic,
        } => plain::serve(listen, &repo, &bus, &topic).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
