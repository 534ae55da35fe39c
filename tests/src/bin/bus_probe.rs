//! A small program the end-to-end tests run as a separate process, so they can kill it or
//! signal it for real. It uses the hub's own bus building blocks and nothing else.
//!
//! * `produce`: several concurrent senders publish until SIGTERM, then the process drains
//!   through `hub_bus::Lifecycle` exactly as the hub does. Each acknowledged record is printed
//!   as `ACK <message-id>`, and the last line is `SUMMARY handed=… acked=… failed=…`.
//! * `consume`: joins a group, and for each record prints `PROCESSED <message-id>`, then
//!   (with `--commit`) commits it and prints `COMMITTED <message-id>`. Without `--commit` it
//!   never commits. It exits after `--max` records.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hub_bus::{now_shanghai, Consumer, Envelope, Lifecycle, Producer};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        commit: bool,
        #[arg(long, default_value_t = 1)]
        max: usize,
    },
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A test reads these lines while the process runs: write each one through.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bus = hub_tests::bus_section();
    match args.command {
        Cmd::Produce {
            topic,
            concurrency,
            size,
        } => {
            let producer = Producer::new(&bus)?;
            let lifecycle = Lifecycle::new();
            lifecycle.stop_on_signals()?;
            let handed = Arc::new(AtomicU64::new(0));
            let acked = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let payload = vec![b'x'; size];
            for sender in 0..concurrency {
                let (producer, lifecycle, topic, payload) = (
                    producer.clone(),
                    lifecycle.clone(),
                    topic.clone(),
                    payload.clone(),
                );
                let (handed, acked, failed) = (handed.clone(), acked.clone(), failed.clone());
                lifecycle.clone().spawn(async move {
                    let mut n = 0u64;
                    // Intake stops at the signal; the send in progress runs to its verdict.
                    while !lifecycle.is_stopping() {
                        n += 1;
                        let env = Envelope::new(
                            "test.probe.sent",
                            1,
                            "bus-probe",
                            "test",
                            format!("sender-{sender}-{n}"),
                            now_shanghai(),
                        );
                        handed.fetch_add(1, Ordering::SeqCst);
                        match producer.send(&topic, &env, &payload).await {
                            Ok(_) => {
                                acked.fetch_add(1, Ordering::SeqCst);
                                say(&format!("ACK {}", env.message_id));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                say(&format!("FAIL {} {e}", env.message_id));
                            }
                        }
                    }
                });
            }
            let report = lifecycle
                .drain(Some(&producer), Duration::from_secs(20))
                .await;
            say(&format!(
                "SUMMARY handed={} acked={} failed={} clean={}",
                handed.load(Ordering::SeqCst),
                acked.load(Ordering::SeqCst),
                failed.load(Ordering::SeqCst),
                report.is_clean()
            ));
            if !report.is_clean() {
                std::process::exit(1);
            }
        }
        Cmd::Consume {
            topic,
            group,
            commit,
            max,
        } => {
            let consumer = Consumer::new(&bus, &group, &[topic.as_str()])?;
            for _ in 0..max {
                let d = consumer.next().await?;
                let id = d
                    .envelope
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .message_id;
                say(&format!("PROCESSED {id}"));
                if commit {
                    consumer.commit(&d).await?;
                    say(&format!("COMMITTED {id}"));
                }
            }
        }
    }
    Ok(())
}
