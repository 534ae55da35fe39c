//! The file declarations of a manifest checked against its mappings (`docs/files.md`):
//! `[[file]]` and a delivery's `file`. The declarations themselves are in
//! `hub_files::wiring`, shared with the gateway and the egress.

use hub_mapping::{Direction, MappingSet};

use crate::manifest::Manifest;

/// Every problem of the manifest's file declarations.
pub(crate) fn check(m: &Manifest, mappings: &MappingSet) -> Vec<String> {
    let mut out = hub_files::wiring::inbound_problems(&m.files);
    let inbound =
        |name: &str, what: String, out: &mut Vec<String>| match mappings.get(&m.partner, name) {
            Some(map) if map.direction == Direction::Inbound => {}
            Some(_) => out.push(format!(
                "{what}: mapping `{name}` is not an inbound mapping"
            )),
            None => out.push(format!(
                "{what}: mapping `{name}` is not in mappings/{}/mappings.toml",
                m.partner
            )),
        };
    for f in &m.files {
        inbound(&f.mapping, "file".into(), &mut out);
    }
    for d in &m.deliveries {
        if let Some(f) = &d.file {
            out.extend(
                f.problems()
                    .into_iter()
                    .map(|p| format!("delivery `{}`: {p}", d.name)),
            );
        }
    }
    out
}

impl Manifest {
    /// The `[[file]]` declarations of one inbound mapping.
    pub fn files_of(&self, mapping: &str) -> Vec<hub_files::wiring::InboundFile> {
        self.files
            .iter()
            .filter(|f| f.mapping == mapping)
            .cloned()
            .collect()
    }
}
