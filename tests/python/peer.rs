//! Runs one of the independent implementations in `tests/python` (the scripts the hub is
//! compared with) on a JSON list of operations and returns its JSON answer. Shared by the test
//! files that use them through `#[path = "…/tests/python/peer.rs"] mod peer;`, so that crates
//! with no test dependency in common run the scripts one way.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// `script` (a file of `tests/python`) run by the Python of `HUB_TEST_PYTHON`, `ops` on its
/// standard input; fails the test when the script fails, with what it printed.
pub fn run<T: DeserializeOwned>(script: &str, ops: &Value) -> T {
    let python = std::env::var("HUB_TEST_PYTHON").expect(
        "HUB_TEST_PYTHON is not set: run the tests with ops/test.sh, which prepares a Python \
         environment with tests/python/requirements.txt (gmssl)",
    );
    // Every crate that includes this file sits two folders below the repository's root.
    let path = format!("{}/../../tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ops.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
