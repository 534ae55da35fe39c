//! Every message the simulator generates maps without error through the hub's own mappings
//! (`mappings/hotline12345/`) to its contract, and every outbound fixture the hub would send is
//! accepted by the simulator's checks. A district or category the mappings reject would break
//! the end-to-end tests; this catches it here.

use std::path::Path;

use hotline12345_simulator::generate::{to_gbk_xml, to_json_bytes, Generator, Unit};
use hotline12345_simulator::model::{validate, Action};
use hotline12345_simulator::time::parse_local;
use hub_contracts::Catalog;
use hub_mapping::MappingSet;
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.."))
}

fn load() -> (Catalog, MappingSet) {
    let catalog =
        hub_contracts::load_dir(&repo().join("contracts/schemas")).expect("contracts load");
    let set = MappingSet::load(&repo().join("mappings"), &catalog).unwrap_or_else(|p| {
        panic!(
            "mappings do not load: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    (catalog, set)
}

fn inbound(set: &MappingSet, catalog: &Catalog, name: &str, body: &[u8]) -> Value {
    let m = set.get("hotline12345", name).expect("mapping exists");
    m.inbound(body, catalog).unwrap_or_else(|e| {
        panic!(
            "{name} refused a generated message: {e:?}\n{}",
            String::from_utf8_lossy(body)
        )
    })
}

#[test]
fn generated_messages_map_to_their_contracts() {
    let (catalog, set) = load();
    let at = parse_local("2026-11-22 09:30:00").unwrap();
    let mut seen_categories = std::collections::BTreeSet::new();
    let mut seen_districts = std::collections::BTreeSet::new();
    let mut anonymous = 0;
    let mut with_files = 0;
    for seed in 0..8u64 {
        let mut g = Generator::new(Some(seed), None, Unit::default());
        for i in 0..60 {
            let v = g.dispatch(at);
            let json = inbound(&set, &catalog, "dispatch_json", &to_json_bytes(&v));
            let xml = inbound(&set, &catalog, "dispatch_xml", &to_gbk_xml(&v));
            // Both forms carry the same ticket.
            assert_eq!(json, xml, "JSON and XML of {} differ", v["gdbh"]);
            assert_eq!(json["ticket_no"], v["gdbh"]);
            assert_eq!(json["dispatched_at"], "2026-11-22T09:30:00+08:00");
            assert!(json["category_name"].is_string());
            seen_categories.insert(json["category_code"].as_str().unwrap().to_string());
            seen_districts.insert(json["district_code"].as_str().unwrap().to_string());
            if json["caller_name"].is_null() {
                anonymous += 1;
                assert!(json["caller_phone"].is_null());
            }
            if json["attachments"].is_array() {
                with_files += 1;
            }

            let no = v["gdbh"].as_str().unwrap();
            let later = at + chrono::Duration::hours(i64::from(i % 5) + 1);
            inbound(
                &set,
                &catalog,
                "urge_json",
                &to_json_bytes(&g.urge(no, 1, later)),
            );
            inbound(
                &set,
                &catalog,
                "urge_json",
                &to_json_bytes(&g.urge(no, 2, later)),
            );
            inbound(
                &set,
                &catalog,
                "close_json",
                &to_json_bytes(&g.close(no, true, later)),
            );
            inbound(
                &set,
                &catalog,
                "close_json",
                &to_json_bytes(&g.close(no, false, later)),
            );
            inbound(
                &set,
                &catalog,
                "visit_json",
                &to_json_bytes(&g.visit(no, later)),
            );
        }
    }
    assert_eq!(seen_categories.len(), 9, "every category appears");
    assert_eq!(seen_districts.len(), 16, "every district appears");
    assert!(anonymous > 0 && with_files > 0);
}

#[test]
fn what_the_hub_sends_passes_the_simulators_checks() {
    let dir = repo().join("mappings/hotline12345/fixtures");
    for (folder, action) in [
        ("sign_json", Action::Sign),
        ("return_json", Action::Return),
        ("extension_json", Action::Extension),
        ("reply_json", Action::Reply),
    ] {
        let mut n = 0;
        for entry in std::fs::read_dir(dir.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".expected.json") {
                continue;
            }
            let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            validate(action, &body)
                .unwrap_or_else(|c| panic!("{} refused with {c}", path.display()));
            n += 1;
        }
        assert!(n > 0, "{folder} has expected outputs");
    }
}
