//! `hub-bench mapping`: mapping throughput on one core. A representative 12345 dispatch
//! ticket as GBK XML and as JSON, through decode, parse, the VRL program and contract
//! validation (and Avro encoding), against the bare decode-and-parse of the same bytes
//! measured in the same run.

use std::time::Instant;

use anyhow::Context;

/// Runs `f` `iterations` times on this thread and returns records per second.
fn per_second(iterations: usize, mut f: impl FnMut()) -> f64 {
    // Warm up caches and allocator first.
    for _ in 0..iterations.min(500) {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    iterations as f64 / start.elapsed().as_secs_f64()
}

pub fn mapping_bench(iterations: usize) -> anyhow::Result<()> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = hub_contracts::load_dir(&repo.join("contracts/schemas"))
        .map_err(|p| anyhow::anyhow!("contracts: {}", p.len()))?;
    let set = hub_mapping::MappingSet::load(&repo.join("mappings"), &catalog).map_err(|p| {
        anyhow::anyhow!(
            "mappings: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let fixtures = repo.join("mappings/hotline12345/fixtures");
    let xml = std::fs::read(fixtures.join("dispatch_xml/normal_gbk.input.xml"))?;
    let json = std::fs::read(fixtures.join("dispatch_json/normal.input.json"))?;
    let xml_mapping = set
        .get("hotline12345", "dispatch_xml")
        .context("dispatch_xml mapping")?;
    let json_mapping = set
        .get("hotline12345", "dispatch_json")
        .context("dispatch_json mapping")?;
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == "hotline.ticket.dispatched.v1")
        .context("dispatch contract")?;

    let rows = [
        (
            "xml-gbk: decode + parse only (baseline)",
            per_second(iterations, || {
                let _ = xml_mapping.read_input(&xml).expect("readable");
            }),
        ),
        (
            "xml-gbk: decode + parse + VRL + validate",
            per_second(iterations, || {
                let _ = xml_mapping.inbound(&xml, &catalog).expect("maps");
            }),
        ),
        (
            "xml-gbk: … + Avro encode",
            per_second(iterations, || {
                let record = xml_mapping.inbound(&xml, &catalog).expect("maps");
                let _ = contract.encode(&record).expect("encodes");
            }),
        ),
        (
            "json: decode + parse only (baseline)",
            per_second(iterations, || {
                let _ = json_mapping.read_input(&json).expect("readable");
            }),
        ),
        (
            "json: decode + parse + VRL + validate",
            per_second(iterations, || {
                let _ = json_mapping.inbound(&json, &catalog).expect("maps");
            }),
        ),
    ];
    println!(
        "payloads: GBK XML {} bytes, JSON {} bytes; one thread; {iterations} iterations each",
        xml.len(),
        json.len()
    );
    println!("| scenario | records/s (one core) | ratio to its baseline |");
    println!("|---|---:|---:|");
    for (i, (name, rate)) in rows.iter().enumerate() {
        let baseline = if i < 3 { rows[0].1 } else { rows[3].1 };
        println!("| {name} | {rate:.0} | {:.2} |", rate / baseline);
    }
    Ok(())
}
