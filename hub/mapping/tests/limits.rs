//! Depth and size limits on the shipped 12345 mappings: a payload nesting far too deep (the one
//! that used to overflow the stack and abort the hub) is refused with `INPUT_TOO_DEEP` before
//! anything recurses over it, in XML and JSON, inbound and outbound; a normal payload still maps.

use std::path::Path;

use hub_mapping::{InputLimits, MappingSet};
use serde_json::{json, Value};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn load() -> (MappingSet, hub_contracts::Catalog) {
    let catalog =
        hub_contracts::load_dir(&repo().join("contracts/schemas")).expect("contracts load");
    let set = MappingSet::load(&repo().join("mappings"), &catalog)
        .unwrap_or_else(|_| panic!("mappings load"));
    (set, catalog)
}

/// `depth` nested arrays, built without recursion (and never dropped by recursion here).
fn deep_json(depth: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("mappings/hotline12345/fixtures").join(path)).unwrap()
}

#[test]
fn a_hundred_thousand_levels_of_xml_are_refused_not_a_stack_overflow() {
    let (set, catalog) = load();
    let m = set.get("hotline12345", "dispatch_xml").unwrap();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><gd>{}{}</gd>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let e = m.inbound(body.as_bytes(), &catalog).unwrap_err();
    assert_eq!(e.code, "INPUT_TOO_DEEP", "{e}");
    assert!(e.message.contains("64"), "{e}");
}

#[test]
fn a_hundred_thousand_levels_of_json_are_refused_before_parsing() {
    let (set, catalog) = load();
    let m = set.get("hotline12345", "dispatch_json").unwrap();
    let body = format!(
        "{{\"gdbh\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = m.inbound(body.as_bytes(), &catalog).unwrap_err();
    assert_eq!(e.code, "INPUT_TOO_DEEP", "{e}");
    // Below serde_json's own limit of 128, the hub's is what answers.
    let body = format!("{{\"gdbh\":{}{}}}", "[".repeat(70), "]".repeat(70));
    assert_eq!(
        m.inbound(body.as_bytes(), &catalog).unwrap_err().code,
        "INPUT_TOO_DEEP"
    );
}

#[test]
fn too_many_nodes_are_refused_and_limits_are_configurable() {
    let (mut set, catalog) = load();
    set.set_input_limits(InputLimits {
        max_depth: 4,
        max_nodes: 50,
    });
    let m = set.get("hotline12345", "dispatch_json").unwrap();
    let wide = format!("[{}1]", "1,".repeat(60));
    assert_eq!(
        m.inbound(wide.as_bytes(), &catalog).unwrap_err().code,
        "INPUT_TOO_MANY_NODES"
    );
    let deep = "[[[[[1]]]]]";
    assert_eq!(
        m.inbound(deep.as_bytes(), &catalog).unwrap_err().code,
        "INPUT_TOO_DEEP"
    );
    let xml = set.get("hotline12345", "dispatch_xml").unwrap();
    let wide = format!("<gd>{}</gd>", "<x/>".repeat(60));
    assert_eq!(
        xml.inbound(wide.as_bytes(), &catalog).unwrap_err().code,
        "INPUT_TOO_MANY_NODES"
    );
}

#[test]
fn normal_payloads_still_map_under_the_default_limits() {
    let (set, catalog) = load();
    let m = set.get("hotline12345", "dispatch_json").unwrap();
    let record = m
        .inbound(&fixture("dispatch_json/normal.input.json"), &catalog)
        .unwrap();
    assert_eq!(record["ticket_no"], "GD20261122000123");
}

#[test]
fn a_deep_value_handed_to_an_outbound_mapping_is_refused_and_dropped_safely() {
    let (set, _) = load();
    let m = set.get("hotline12345", "sign_json").unwrap();
    // Built by hand: `json!` would serialise the deep value (recursively) to embed it.
    let mut map = serde_json::Map::new();
    map.insert("ticket_no".into(), json!("GD1"));
    map.insert("extra".into(), deep_json(200_000));
    let record = Value::Object(map);
    let e = m.outbound(&record).unwrap_err();
    assert_eq!(e.code, "INPUT_TOO_DEEP", "{e}");
    // The test's own value is taken apart without recursion too.
    hub_mapping::limits::drop_json(record);
}
