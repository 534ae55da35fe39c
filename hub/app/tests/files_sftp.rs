//! SFTP batch pickup as a hub job (`docs/files.md`, "Batch files over SFTP"): the synthetic
//! partner's `[[batch]] recon` (`tests/synthetic/synthetic_files`) runs every second against Debian's
//! OpenSSH server started by the test on a free loopback port (`HUB_TEST_SSHD` may name another
//! sshd). A reconciliation file left in the inbox is picked up and announced on Kafka once, and
//! still only once after the hub is restarted while the file is still there; a file arriving
//! after the restart is announced too; a name outside the batch's pattern is left alone.

mod support;

#[path = "../../files/tests/support/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hub_bus::Consumer;
use hub_files::FileId;
use serde_json::Value;
use support::synthetic;
use support::*;

/// The synthetic files partner under `dir` with topics of this test alone; the batch topic.
fn synthetic(dir: &Path) -> (PathBuf, PathBuf, PathBuf, String) {
    let s = synthetic::install(dir, "synthetic_files", "synthetic");
    let topic = s.topic("synthetic.files.batch_received.v1");
    (s.contracts, s.mappings, s.adapters, topic)
}

/// Reads `consumer` until `want` records arrived in all or `within` passed.
async fn read(
    consumer: &Consumer,
    contract: &hub_contracts::Contract,
    got: &mut Vec<Value>,
    want: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, consumer.next()).await else {
            return;
        };
        let d = next.unwrap();
        let (_, datum) = hub_contracts::unframe(d.payload.as_deref().unwrap()).unwrap();
        got.push(contract.decode_json(None, datum).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_file_is_picked_up_once_and_only_once_across_a_hub_restart() {
    let sshd = sshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (contracts, mappings, adapters, topic) = synthetic(dir.path());
    let admin = free_port();
    let d = sshd.dir.path().display().to_string();
    let config = write_config(
        dir.path(),
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [bus]\nbootstrap_servers = \"{}\"\n[state]\nurl = \"sqlite://state/hub.db\"\n\
             [contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n\
             [log]\nformat = \"json\"\n[files]\ndir = \"var/files\"\n\
             [gateway]\nlisten = \"127.0.0.1:{}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [partners.synthetic_files]\nbase_url = \"http://127.0.0.1:9\"\napp_id = \"hub\"\n\
             hmac_secret = \"files-partner-secret-0123456789\"\ndeliveries = []\nbatches = [\"recon\"]\n\
             [partners.synthetic_files.sftp]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n\
             host_key_sha256 = \"{}\"\nprivate_key_file = \"{d}/user_key\"\ninbox = \"{d}/inbox\"\ntimeout_ms = 10000\n",
            kafka(),
            contracts.display(),
            mappings.display(),
            adapters.display(),
            free_port(),
            repo().join("ops/dev-keyring.toml").display(),
            sshd.port,
            sshd::user(),
            sshd.fingerprint,
        ),
    );
    let check = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    let inbox = sshd.path("inbox");
    let first = "流水号,金额\nP0001,120.00\n".as_bytes().to_vec();
    std::fs::write(inbox.join("DZ_20261203.csv"), &first).unwrap();
    std::fs::write(inbox.join("README.txt"), b"not a reconciliation file\n").unwrap();

    let catalog = hub_contracts::load_dir(&contracts).unwrap();
    let contract = catalog.contract(&topic).unwrap().clone();
    let mut got = Vec::new();

    let admin_url = format!("http://127.0.0.1:{admin}");
    let serving = serve_config(&config, &admin_url, &[]);
    wait_for_status(&format!("{admin_url}/readyz"), 200, Duration::from_secs(60)).await;
    // Ready: the topics exist (read from the start, whatever was produced already).
    let consumer = Consumer::new(
        &bus_section("batch-reader"),
        &format!("batch-reader-{}", uuid::Uuid::new_v4().simple()),
        &[&topic],
    )
    .unwrap();
    read(&consumer, &contract, &mut got, 1, Duration::from_secs(60)).await;
    // A few more runs: the file, still in the inbox, is not announced again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, logs_before) = stop_and_collect_logs(serving);
    assert_eq!(got.len(), 1, "{got:?}\nhub log:\n{logs_before}");

    // Restarted (same state store and file store), the file still there, a new one beside it.
    let second = "流水号,金额\nP0002,0.01\n".as_bytes().to_vec();
    std::fs::write(inbox.join("DZ_20261204.csv"), &second).unwrap();
    let serving = serve_config(&config, &admin_url, &[]);
    wait_for_status(&format!("{admin_url}/readyz"), 200, Duration::from_secs(60)).await;
    read(&consumer, &contract, &mut got, 2, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    read(&consumer, &contract, &mut got, 3, Duration::from_secs(1)).await;
    let (_, logs) = stop_and_collect_logs(serving);
    assert_eq!(got.len(), 2, "each file once: {got:?}\nhub log:\n{logs}");

    let ids: Vec<&str> = got.iter().map(|r| r["file_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            FileId::of(&first).to_string().as_str(),
            FileId::of(&second).to_string().as_str()
        ]
    );
    for (r, size) in got.iter().zip([first.len(), second.len()]) {
        assert_eq!(r["partner"], "synthetic_files");
        assert_eq!(r["media_type"], "text/csv");
        assert_eq!(r["size"], size as i64);
        // The file name (also in the pickup id) is personal data for the contract: sealed.
        assert!(
            r["file_name"].as_str().unwrap().starts_with("sm4gcm:"),
            "{r}"
        );
        assert!(
            r["pickup_id"].as_str().unwrap().starts_with("sm4gcm:"),
            "{r}"
        );
    }
    // The files are in the hub's store, readable by id.
    let store = hub_files::config::FilesSection::default()
        .open(dir.path(), None)
        .unwrap();
    for (id, bytes) in ids.iter().zip([&first, &second]) {
        let (_, read) = store
            .read_all(&FileId::parse(id).unwrap(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&read[..], &bytes[..]);
    }
    assert!(
        !logs.contains("DZ_20261204") && !logs_before.contains("DZ_20261203"),
        "a file name was logged"
    );
}
