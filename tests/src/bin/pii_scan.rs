//! After a test run: proves that no personal data the fixtures carry reached Kafka or the test
//! log in clear text.
//!
//! The clear values come from the golden fixtures themselves: every inbound fixture that maps
//! is mapped (an outbound fixture already is a contract record), and the values at the
//! contract's personal-data paths (`x-pii`) are the strings to look for. Then every record of every contract topic on the broker, and the test log, are
//! scanned for them. Exit 1 names each finding (masked).
//!
//! usage: pii-scan --log FILE   (broker from HUB_TEST_KAFKA_BOOTSTRAP)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hub_bus::Consumer;
use hub_mapping::{Direction, MappingSet};
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// The test run's output.
    #[arg(long)]
    log: PathBuf,
}

/// Values at a contract path such as `applicant.id_number` or `materials[].holder_name`.
fn values_at<'a>(v: &'a Value, path: &[&str], out: &mut Vec<&'a str>) {
    let Some((first, rest)) = path.split_first() else {
        if let Some(s) = v.as_str() {
            out.push(s);
        }
        return;
    };
    let (name, each) = first
        .strip_suffix("[]")
        .map_or((*first, false), |n| (n, true));
    match (v.get(name), each) {
        (Some(Value::Array(items)), true) => items.iter().for_each(|i| values_at(i, rest, out)),
        (Some(child), false) => values_at(child, rest, out),
        _ => {}
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = hub_contracts::load_dir(&repo.join("contracts/schemas"))
        .map_err(|p| anyhow::anyhow!("{} contract problems", p.len()))?;
    let set = MappingSet::load(&repo.join("mappings"), &catalog)
        .map_err(|p| anyhow::anyhow!("{} mapping problems", p.len()))?;

    // 1. The clear personal values of every inbound fixture that maps.
    let mut clear: BTreeSet<String> = BTreeSet::new();
    for m in &set.mappings {
        let Some(contract) = catalog
            .contracts
            .iter()
            .find(|c| c.declaration.topic == m.contract)
        else {
            continue;
        };
        let dir = m.folder.join("fixtures").join(&m.name);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".input."))
            {
                continue;
            }
            // Inbound: the record the fixture maps to; outbound: the fixture is a record.
            let record = match m.direction {
                Direction::Inbound => match m.inbound(&std::fs::read(&path)?, &catalog) {
                    Ok(r) => r,
                    Err(_) => continue,
                },
                Direction::Answer => continue,
                Direction::Outbound => {
                    match serde_json::from_slice::<Value>(&std::fs::read(&path)?) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                }
            };
            for field in &contract.pii {
                let segments: Vec<&str> = field.path.split('.').collect();
                let mut found = Vec::new();
                values_at(&record, &segments, &mut found);
                // Very short values (one character) would match anywhere; they are not
                // identifying on their own.
                clear.extend(
                    found
                        .into_iter()
                        .filter(|s| s.chars().count() >= 2)
                        .map(str::to_string),
                );
            }
        }
    }
    anyhow::ensure!(
        !clear.is_empty(),
        "the fixtures yielded no personal values to look for"
    );

    let mut findings = Vec::new();
    // 2. Every record on every contract topic.
    let rt = tokio::runtime::Runtime::new()?;
    let records = rt.block_on(async {
        let bus = hub_tests::bus_section();
        let topics: Vec<String> = catalog.topics().into_iter().map(|t| t.name).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let consumer = Consumer::new(&bus, &hub_tests::unique("pii-scan"), &refs)?;
        let mut n = 0usize;
        let mut hits = Vec::new();
        // Read until the topics have been quiet for 5 s.
        while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            n += 1;
            let bytes = d.payload.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for c in &clear {
                if text.contains(c.as_str()) {
                    hits.push(format!(
                        "{}[{}]@{}: `{}`",
                        d.topic,
                        d.partition,
                        d.offset,
                        hub_security::mask::by_kind("name", c)
                    ));
                }
            }
        }
        anyhow::Ok((n, hits))
    })?;
    findings.extend(records.1);

    // 3. The test log.
    let log = std::fs::read_to_string(&args.log).unwrap_or_default();
    for c in &clear {
        if log.contains(c.as_str()) {
            findings.push(format!(
                "{}: `{}`",
                args.log.display(),
                hub_security::mask::by_kind("name", c)
            ));
        }
    }

    if findings.is_empty() {
        println!(
            "pii-scan: {} personal values from the fixtures; {} Kafka records and {} bytes of test log scanned: none in clear text",
            clear.len(),
            records.0,
            log.len()
        );
        Ok(())
    } else {
        for f in &findings {
            eprintln!("clear personal data: {f}");
        }
        std::process::exit(1);
    }
}
