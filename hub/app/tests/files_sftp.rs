//! SFTP batch pickup as a hub job (`docs/files.md`, "Batch files over SFTP"): the synthetic
//! partner's `[[batch]] recon` (`tests/synthetic/synthetic_files`) runs every second against Debian's
//! OpenSSH server started by the test on a free loopback port (`HUB_TEST_SSHD` may name another
//! sshd). A reconciliation file left in the inbox is picked up and announced on Kafka once, and
//! still only once after the hub is restarted while the file is still there; a file arriving
//! after the restart is announced too; a name outside the batch's pattern is left alone; a file
//! whose record the batch's mapping refuses is dead-lettered once (sealed) and not tried again.
//!
//! The synthetic partner's `[[delivery]] sftp_upload` (`transport = "sftp"`) uploads the hub's own
//! files into the server's outbox: a record on the contract topic puts the file there with its
//! SM3 and no `.part` left behind; an unknown file id is dead-lettered `FILE_NOT_FOUND`, a name
//! that is not a plain name `FILE_NAME_INVALID`; `hub check` refuses the delivery on a partner
//! without an SFTP server.

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

/// The dead letters of `route` whose original key is one of `keys` (the shared dead-letter
/// topic holds other tests' too), read from `consumer` until `want` arrived or `within` passed.
async fn read_dead_letters(
    consumer: &Consumer,
    contract: &hub_contracts::Contract,
    route: &str,
    keys: &[&str],
    got: &mut Vec<hub_egress::deadletter::DeadLetterRecord>,
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
        let Ok(r) =
            hub_egress::deadletter::decode(contract, d.payload.as_deref().unwrap_or_default())
        else {
            continue;
        };
        let key = r
            .original_key
            .clone()
            .map(|k| String::from_utf8_lossy(&k).into_owned());
        if r.route == route && key.is_some_and(|k| keys.contains(&k.as_str())) {
            got.push(r);
        }
    }
}

fn dead_letter_reader(catalog: &hub_contracts::Catalog) -> (Consumer, hub_contracts::Contract) {
    let contract = catalog
        .contract(hub_egress::DEAD_LETTER_TOPIC)
        .unwrap()
        .clone();
    let consumer = Consumer::new(
        &bus_section("dlq-reader"),
        &format!("dlq-reader-{}", uuid::Uuid::new_v4().simple()),
        &[hub_egress::DEAD_LETTER_TOPIC],
    )
    .unwrap();
    (consumer, contract)
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
    // A file the batch's mapping refuses (its name): unique content, so its dead letter is
    // this test's own on the shared topic.
    let refused = format!("流水号,金额\nP{},1.00\n", uuid::Uuid::new_v4().simple()).into_bytes();
    let refused_id = FileId::of(&refused).to_string();
    std::fs::write(inbox.join("DZ_INVALID_20261203.csv"), &refused).unwrap();

    let catalog = hub_contracts::load_dir(&contracts).unwrap();
    let contract = catalog.contract(&topic).unwrap().clone();
    let mut got = Vec::new();
    let mut dead = Vec::new();
    let batch_route = "synthetic_files/batch.recon";

    let admin_url = format!("http://127.0.0.1:{admin}");
    let serving = serve_config(&config, &admin_url, &[]);
    wait_for_status(&format!("{admin_url}/readyz"), 200, Duration::from_secs(60)).await;
    // Ready: the topics exist (read from the start, whatever was produced already).
    let (dlq, dl_contract) = dead_letter_reader(&catalog);
    let consumer = Consumer::new(
        &bus_section("batch-reader"),
        &format!("batch-reader-{}", uuid::Uuid::new_v4().simple()),
        &[&topic],
    )
    .unwrap();
    read(&consumer, &contract, &mut got, 1, Duration::from_secs(60)).await;
    read_dead_letters(
        &dlq,
        &dl_contract,
        batch_route,
        &[&refused_id],
        &mut dead,
        1,
        Duration::from_secs(60),
    )
    .await;
    // A few more runs: the file, still in the inbox, is not announced again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, logs_before) = stop_and_collect_logs(serving);
    assert_eq!(got.len(), 1, "{got:?}\nhub log:\n{logs_before}");
    assert_eq!(
        dead.len(),
        1,
        "the refused file is dead-lettered\nhub log:\n{logs_before}"
    );

    // Restarted (same state store and file store), the file still there, a new one beside it.
    let second = "流水号,金额\nP0002,0.01\n".as_bytes().to_vec();
    std::fs::write(inbox.join("DZ_20261204.csv"), &second).unwrap();
    let serving = serve_config(&config, &admin_url, &[]);
    wait_for_status(&format!("{admin_url}/readyz"), 200, Duration::from_secs(60)).await;
    read(&consumer, &contract, &mut got, 2, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    read(&consumer, &contract, &mut got, 3, Duration::from_secs(1)).await;
    read_dead_letters(
        &dlq,
        &dl_contract,
        batch_route,
        &[&refused_id],
        &mut dead,
        2,
        Duration::from_secs(1),
    )
    .await;
    let (_, logs) = stop_and_collect_logs(serving);
    assert_eq!(got.len(), 2, "each file once: {got:?}\nhub log:\n{logs}");
    // The refused file: one dead letter across the runs and the restart, its mapping input
    // (which holds the file name) sealed, the name nowhere in clear; listed by `hub dlq list`.
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}\nhub log:\n{logs}");
    let letter = &dead[0];
    assert_eq!(letter.reason_code, "MAPPING_FAILED");
    assert!(String::from_utf8_lossy(&letter.original_payload).starts_with("sm4gcm:v1:"));
    let clear = format!("{letter:?}");
    assert!(!clear.contains("DZ_INVALID"), "{clear}");
    let listed: Vec<_> = dlq_list(&config, None)
        .into_iter()
        .filter(|l| l["route"] == batch_route)
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["reason_code"], "MAPPING_FAILED");
    assert!(
        !listed[0].to_string().contains("DZ_INVALID"),
        "{}",
        listed[0]
    );
    assert!(
        !logs.contains("DZ_INVALID") && !logs_before.contains("DZ_INVALID"),
        "a file name was logged"
    );
    // Nothing reads a batch file's replay back yet: refused with its code, still pending,
    // rather than marked replayed and lost.
    let dl_id = listed[0]["id"].as_str().unwrap();
    let replay = hub(
        &["dlq", "replay", dl_id, "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(!replay.status.success());
    assert!(
        text(&replay.stderr).contains("DLQ_REPLAY_NOT_IMPLEMENTED"),
        "{}",
        text(&replay.stderr)
    );
    let still: Vec<_> = dlq_list(&config, None)
        .into_iter()
        .filter(|l| l["route"] == batch_route)
        .collect();
    assert_eq!(still[0]["status"], "pending", "{still:?}");

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

/// The synthetic partner's config with the SFTP delivery `sftp_upload` enabled; `sftp`: the
/// `[partners.synthetic_files.sftp]` section, or none.
fn upload_config(
    dir: &Path,
    s: (&Path, &Path, &Path),
    admin: u16,
    sftp: Option<String>,
) -> PathBuf {
    let (contracts, mappings, adapters) = s;
    write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [bus]\nbootstrap_servers = \"{}\"\n[state]\nurl = \"sqlite://state/hub.db\"\n\
             [contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n\
             [log]\nformat = \"json\"\n[files]\ndir = \"var/files\"\n\
             [gateway]\nlisten = \"127.0.0.1:{}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"upload-{}\"\n\
             [partners.synthetic_files]\nbase_url = \"http://127.0.0.1:9\"\napp_id = \"hub\"\n\
             hmac_secret = \"files-partner-secret-0123456789\"\ndeliveries = [\"sftp_upload\"]\n\
             max_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 100\n{}",
            kafka(),
            contracts.display(),
            mappings.display(),
            adapters.display(),
            free_port(),
            repo().join("ops/dev-keyring.toml").display(),
            uuid::Uuid::new_v4().simple(),
            sftp.unwrap_or_default(),
        ),
    )
}

/// Produces a `synthetic.files.batch_send.v1` record (the file name sealed, as the contract
/// marks it personal) keyed by the file id; its message id.
async fn produce_send(
    producer: &hub_bus::Producer,
    contract: &hub_contracts::Contract,
    file_id: &str,
    name: &str,
) -> String {
    let ring =
        hub_security::field::KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let mut record = serde_json::json!({"file_id": file_id, "file_name": name});
    hub_pipeline::pii::seal_record(
        &hub_security::field::FieldCipher::new(ring),
        contract,
        &mut record,
    )
    .unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let envelope = hub_bus::Envelope::new(
        "synthetic.files.batch_send",
        1,
        "files-app",
        "synthetic_files",
        file_id,
        hub_bus::now_shanghai(),
    );
    producer
        .send(&contract.declaration.topic, &envelope, &framed)
        .await
        .unwrap();
    envelope.message_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sftp_delivery_uploads_the_file_a_record_names_into_the_partner_outbox() {
    let sshd = sshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = synthetic::install(dir.path(), "synthetic_files", "synthetic");
    let topic = s.topic("synthetic.files.batch_send.v1");
    let paths = (
        s.contracts.as_path(),
        s.mappings.as_path(),
        s.adapters.as_path(),
    );
    let admin = free_port();

    // Without the partner's SFTP server, `hub check` refuses the delivery, naming the key.
    let config = upload_config(dir.path(), paths, admin, None);
    let check = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!check.status.success());
    assert!(
        text(&check.stderr).contains("key `partners.synthetic_files.sftp`"),
        "{}",
        text(&check.stderr)
    );

    let d = sshd.dir.path().display().to_string();
    let sftp = format!(
        "[partners.synthetic_files.sftp]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n\
         host_key_sha256 = \"{}\"\nprivate_key_file = \"{d}/user_key\"\noutbox = \"{d}/outbox\"\ntimeout_ms = 10000\n",
        sshd.port,
        sshd::user(),
        sshd.fingerprint,
    );
    let config = upload_config(dir.path(), paths, admin, Some(sftp));
    let check = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    // The hub's own batch file, in its store (unique content: this test's own id).
    let content = format!("流水号,金额\nH{},8.00\n", uuid::Uuid::new_v4().simple()).into_bytes();
    let store = hub_files::config::FilesSection::default()
        .open(dir.path(), None)
        .unwrap();
    let stored = store
        .put_bytes(content.clone().into(), &hub_files::PutOptions::default())
        .await
        .unwrap();
    let id = stored.id.to_string();
    let missing =
        FileId::of(format!("never stored {}", uuid::Uuid::new_v4()).as_bytes()).to_string();

    let admin_url = format!("http://127.0.0.1:{admin}");
    let serving = serve_config(&config, &admin_url, &[]);
    wait_for_status(&format!("{admin_url}/readyz"), 200, Duration::from_secs(60)).await;
    let catalog = hub_contracts::load_dir(&s.contracts).unwrap();
    let contract = catalog.contract(&topic).unwrap().clone();
    let (dlq, dl_contract) = dead_letter_reader(&catalog);
    let producer = hub_bus::Producer::new(&bus_section("upload-test")).unwrap();
    // Same key (the file id): delivered in this order. Uploaded twice under the same name (the
    // second replaces the first), then a name that is not a plain name; and an unknown file.
    produce_send(&producer, &contract, &id, "HUB_20261203.csv").await;
    produce_send(&producer, &contract, &id, "HUB_20261203.csv").await;
    produce_send(&producer, &contract, &id, "../HUB_escape.csv").await;
    produce_send(&producer, &contract, &missing, "HUB_missing.csv").await;

    let mut dead = Vec::new();
    read_dead_letters(
        &dlq,
        &dl_contract,
        "synthetic_files/sftp_upload",
        &[&id, &missing],
        &mut dead,
        2,
        Duration::from_secs(60),
    )
    .await;
    let (_, logs) = stop_and_collect_logs(serving);
    let mut codes: Vec<&str> = dead.iter().map(|r| r.reason_code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["FILE_NAME_INVALID", "FILE_NOT_FOUND"],
        "hub log:\n{logs}"
    );

    // The refused name came after the uploads of its key: they are done. The file is in the
    // outbox with its SM3, nothing half-written left, nothing outside the outbox.
    let outbox: Vec<String> = std::fs::read_dir(sshd.path("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outbox, ["HUB_20261203.csv"], "hub log:\n{logs}");
    let uploaded = std::fs::read(sshd.path("outbox").join("HUB_20261203.csv")).unwrap();
    assert_eq!(FileId::of(&uploaded).to_string(), id);
    assert!(!sshd.path("HUB_escape.csv").exists());
    let listed: Vec<_> = dlq_list(&config, None)
        .into_iter()
        .filter(|l| l["route"] == "synthetic_files/sftp_upload")
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The remote names are personal: in no log line, no dead letter's reason.
    assert!(
        !logs.contains("HUB_20261203")
            && !logs.contains("HUB_escape")
            && !logs.contains("HUB_missing")
    );
    for r in &dead {
        assert!(!r.reason.contains("HUB_"), "{}", r.reason);
    }
}
