//! State kept across restarts: the partner's objects, the answers stored under idempotency keys
//! and the nonces already used, in one JSON file written to a temporary file beside it and then
//! renamed over it, so a crash mid-write leaves the previous state whole.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

/// What a partner keeps in the state file besides the kit's own keys (`answers`, `nonces`):
/// top-level keys of its own choosing (12345: `tickets`). Whatever is not saved (a data
/// generator, counters) starts afresh after a restart.
pub trait PartnerState: Send + 'static {
    /// The partner's keys of the state file.
    fn save(&self) -> serde_json::Result<Map<String, Value>>;
    /// Takes back what [`Self::save`] wrote; returns how many objects it held (for the log).
    fn restore(&mut self, saved: Map<String, Value>) -> serde_json::Result<usize>;
    /// A cheap sign that something changed since the last save (counts of objects, history
    /// entries, …); the kit adds its own.
    fn fingerprint(&self) -> u64 {
        0
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed to disk, then renamed
/// over it. Missing folders are made.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads `path`; `None` when there is no such file (a first start).
pub fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        assert_eq!(read_optional(&path).unwrap(), None);
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
    }
}
