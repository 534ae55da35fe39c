//! Every mapping shipped in `mappings/` against its golden fixtures and its contract.

use std::path::Path;

use hub_mapping::{run_fixtures, MappingSet};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn every_shipped_mapping_passes_its_golden_fixtures() {
    let catalog =
        hub_contracts::load_dir(&repo().join("contracts/schemas")).expect("contracts load");
    let set = MappingSet::load(&repo().join("mappings"), &catalog).unwrap_or_else(|problems| {
        panic!(
            "mappings do not load:\n{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(!set.mappings.is_empty());
    let outcomes = run_fixtures(&set, &catalog);
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.failure
                .as_ref()
                .map(|f| format!("{} [{}] {}: {f}", o.mapping, o.case, o.path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Each mapping ran at least two cases (one passing, one invalid).
    for m in &set.mappings {
        let n = outcomes
            .iter()
            .filter(|o| o.mapping == format!("{}/{}", m.partner, m.name))
            .count();
        assert!(n >= 2, "{}/{} has {n} fixture cases", m.partner, m.name);
    }
}
