//! A test's own copy of the contracts and mappings in which the signed-ticket topic has a name
//! of that test alone, so its delivery route reads only its records from the shared broker
//! (which keeps what earlier tests and runs produced).

use std::path::{Path, PathBuf};

use super::repo;

pub struct Isolated {
    pub contracts: PathBuf,
    pub mappings: PathBuf,
    pub topic: String,
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The repository's contracts and mappings copied under `dir`, with
/// `hotline.ticket.signed.v1` renamed to a topic of this test's own.
pub fn isolate(dir: &Path) -> Isolated {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("hotline.ticket.signed_t{}.v1", &id[..10]);
    let contracts = dir.join("contracts/schemas");
    copy_dir(&repo().join("contracts/schemas"), &contracts);
    let mappings = dir.join("mappings");
    copy_dir(&repo().join("mappings"), &mappings);
    for file in [
        contracts.join("hotline/ticket_signed.v1.avsc"),
        mappings.join("hotline12345/mappings.toml"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.replace("\"hotline.ticket.signed.v1\"", &format!("\"{topic}\""));
        std::fs::write(&file, text).unwrap();
    }
    Isolated {
        contracts,
        mappings,
        topic,
    }
}
