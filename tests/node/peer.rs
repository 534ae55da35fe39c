//! Runs one of the independent implementations in `tests/node` (npm `sm-crypto`, pinned by
//! `tests/node/package-lock.json`) on a JSON list of operations and returns its JSON answer.
//! The sibling of `tests/python/peer.rs`, included the same way:
//! `#[path = "…/tests/node/peer.rs"] mod node_peer;`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// `script` (a file of `tests/node`) run by the Node.js of `HUB_TEST_NODE` (default `node` on
/// the `PATH`), `ops` on its standard input; fails the test when the packages are not
/// installed or the script fails, with what it printed.
pub fn run<T: DeserializeOwned>(script: &str, ops: &Value) -> T {
    // Every crate that includes this file sits two folders below the repository's root.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    assert!(
        dir.join("node_modules/sm-crypto/package.json").is_file(),
        "tests/node/node_modules has no sm-crypto: run the tests with ops/test.sh, which \
         installs it, or install it once with `npm ci --prefix tests/node`"
    );
    let node = std::env::var("HUB_TEST_NODE").unwrap_or_else(|_| "node".into());
    let mut child = Command::new(&node)
        .arg(dir.join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("`{node}` does not run ({e}): install Node.js or set HUB_TEST_NODE")
        });
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
