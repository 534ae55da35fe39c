//! SFTP batch-file exchange against Debian's OpenSSH server, started by the test on a free
//! loopback port with its own configuration, host key and user key in a temporary folder
//! (`support/sshd.rs`).

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hub_files::sftp::{Pickup, SftpClient, SftpSection};
use hub_files::{FileError, FileErrorCode, FileId, FileStore, Limits, PutOptions};
use hub_state::{StateSection, StateStore};
use support::sshd::{self, keygen, user, Sshd};
use support::*;

impl Sshd {
    fn section(&self, done: bool) -> SftpSection {
        let d = self.dir.path().display().to_string();
        let mut text = format!(
            "host = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nhost_key_sha256 = \"{}\"\nprivate_key_file = \"{d}/user_key\"\ninbox = \"{d}/inbox\"\noutbox = \"{d}/outbox\"\ntimeout_ms = 10000\n",
            self.port,
            user(),
            self.fingerprint
        );
        if done {
            text.push_str(&format!("done = \"{d}/done\"\n"));
        }
        let s: SftpSection = toml::from_str(&text).unwrap();
        assert!(hub_config::Validate::validate(&s, "sftp").is_empty());
        s
    }
}

fn csv(day: u32) -> Vec<u8> {
    format!("流水号,缴款书号,金额\nP{day:04}-1,3100000001,120.00\nP{day:04}-2,3100000002,0.01\n")
        .into_bytes()
}

/// A pickup as a freshly started hub builds it: new state store connection, new file store.
async fn pickup(sshd: &Sshd, work: &Path, done: bool) -> Pickup {
    let state = StateStore::connect(
        &StateSection {
            url: "sqlite://state/hub.db".into(),
            max_connections: 2,
            ..Default::default()
        },
        work,
    )
    .await
    .unwrap();
    let store = FileStore::local(
        &work.join("files"),
        Some(cipher("k1", &[])),
        Limits::default(),
    )
    .unwrap();
    Pickup {
        job: "finance-recon".into(),
        holder: "hub-test".into(),
        sftp: sshd.section(done),
        base_dir: work.to_path_buf(),
        store,
        state,
        put: PutOptions::default().declared("text/csv").personal(true),
    }
}

type Seen = Arc<Mutex<Vec<(String, FileId)>>>;

fn recorder(
    seen: &Seen,
    fail_on: Option<&'static str>,
) -> impl FnMut(hub_files::sftp::PickedFile) -> std::future::Ready<Result<(), FileError>> {
    let seen = seen.clone();
    move |p| {
        if Some(p.remote_name.as_str()) == fail_on {
            return std::future::ready(Err(FileError::new(
                FileErrorCode::StoreUnavailable,
                "the bus is down",
            )));
        }
        seen.lock()
            .unwrap()
            .push((p.remote_name.clone(), p.file.id));
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn a_batch_file_is_picked_up_once_and_only_once_across_restarts() {
    let sshd = sshd::start().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(sshd.path("inbox/recon_20261201.csv"), csv(1)).unwrap();
    std::fs::write(sshd.path("inbox/recon_20261202.csv"), csv(2)).unwrap();
    // A partner's upload in progress is left alone.
    std::fs::write(sshd.path("inbox/.recon_20261203.csv.part"), b"half").unwrap();
    let seen: Seen = Arc::default();

    // First run: the handler fails for the second file (e.g. Kafka is down).
    {
        let job = pickup(&sshd, work.path(), false).await;
        let r = job
            .run_once(recorder(&seen, Some("recon_20261202.csv")))
            .await
            .unwrap();
        assert_eq!(r.handed_over.len(), 1);
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].1.code, FileErrorCode::StoreUnavailable);
        job.state.close().await;
    }
    // "Restart": new connections, new store objects. Only the failed file is handed over.
    {
        let job = pickup(&sshd, work.path(), false).await;
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert_eq!(r.handed_over.len(), 1, "{r:?}");
        assert_eq!(r.already_picked, 1);
        job.state.close().await;
    }
    // And again: nothing new. Then a new day's file arrives: only it, and only for the replica
    // that holds the job's lease.
    {
        let job = pickup(&sshd, work.path(), false).await;
        assert!(job
            .state
            .acquire_lease(
                "sftp-pickup/finance-recon",
                "hub-other",
                Duration::from_secs(60)
            )
            .await
            .unwrap());
        std::fs::write(sshd.path("inbox/recon_20261203.csv"), csv(3)).unwrap();
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert!(r.not_leader && r.handed_over.is_empty(), "{r:?}");
        job.state
            .release_lease("sftp-pickup/finance-recon", "hub-other")
            .await
            .unwrap();
        std::fs::remove_file(sshd.path("inbox/recon_20261203.csv")).unwrap();
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert!(r.handed_over.is_empty());
        assert_eq!(r.already_picked, 2);
        std::fs::write(sshd.path("inbox/recon_20261203.csv"), csv(3)).unwrap();
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert_eq!(r.handed_over.len(), 1);
        // The stored file is the remote one, byte for byte (same SM3), encrypted at rest.
        let (meta, back) = job
            .store
            .read_all(&FileId::of(&csv(3)), u64::MAX)
            .await
            .unwrap();
        assert_eq!(back.as_ref(), csv(3).as_slice());
        assert!(meta.encrypted);
        assert_eq!(meta.media_type, "text/csv");
        job.state.close().await;
    }
    let names: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        names,
        [
            "recon_20261201.csv",
            "recon_20261202.csv",
            "recon_20261203.csv"
        ]
    );
    let ids: Vec<FileId> = seen.lock().unwrap().iter().map(|(_, id)| *id).collect();
    assert_eq!(
        ids,
        [
            FileId::of(&csv(1)),
            FileId::of(&csv(2)),
            FileId::of(&csv(3))
        ]
    );
}

#[tokio::test]
async fn picked_files_move_to_the_done_folder_and_uploads_appear_whole() {
    let sshd = sshd::start().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(sshd.path("inbox/recon_20261201.csv"), csv(1)).unwrap();
    let seen: Seen = Arc::default();
    {
        let job = pickup(&sshd, work.path(), true).await;
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert_eq!((r.handed_over.len(), r.moved), (1, 1));
        assert!(!sshd.path("inbox/recon_20261201.csv").exists());
        assert_eq!(
            std::fs::read(sshd.path("done/recon_20261201.csv")).unwrap(),
            csv(1)
        );
        job.state.close().await;
    }
    {
        let job = pickup(&sshd, work.path(), true).await;
        let r = job.run_once(recorder(&seen, None)).await.unwrap();
        assert_eq!((r.handed_over.len(), r.moved, r.already_picked), (0, 0, 0));

        // Upload: the hub's own batch file appears under its name, complete, no temp left.
        let ours = b"%PDF-1.7\n% notice 3100000001\n".repeat(50_000);
        let meta = job
            .store
            .put_bytes(
                Bytes::from(ours.clone()),
                &PutOptions::default().personal(true),
            )
            .await
            .unwrap();
        let client = SftpClient::connect(&job.sftp, work.path()).await.unwrap();
        let outbox = job.sftp.outbox.clone().unwrap();
        client
            .upload(&job.store, &meta.id, &outbox, "notices_20261203.pdf")
            .await
            .unwrap();
        // Replacing an earlier upload of the same name works too.
        client
            .upload(&job.store, &meta.id, &outbox, "notices_20261203.pdf")
            .await
            .unwrap();
        client.close().await;
        let remote = std::fs::read(sshd.path("outbox/notices_20261203.pdf")).unwrap();
        assert_eq!(hub_security::sm::sm3_hex(&remote), meta.id.sm3_hex());
        let left: Vec<_> = std::fs::read_dir(sshd.path("outbox"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["notices_20261203.pdf"]);
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_host_key_or_user_key_is_refused_with_its_code() {
    let sshd = sshd::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut wrong_host = sshd.section(false);
    wrong_host.host_key_sha256 = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let e = SftpClient::connect(&wrong_host, work.path())
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, FileErrorCode::SftpHostKeyMismatch, "{e}");
    assert!(
        e.detail.contains(&sshd.fingerprint),
        "names the key it saw: {e}"
    );

    keygen(&work.path().join("stranger"));
    let mut wrong_user = sshd.section(false);
    wrong_user.private_key_file = Some(work.path().join("stranger"));
    let e = SftpClient::connect(&wrong_user, work.path())
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, FileErrorCode::SftpAuthFailed, "{e}");

    let mut nobody = sshd.section(false);
    nobody.port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = SftpClient::connect(&nobody, work.path())
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, FileErrorCode::SftpConnectFailed, "{e}");
}

#[tokio::test]
async fn a_crash_after_the_handover_repeats_it_with_the_same_pickup_id() {
    let sshd = sshd::start().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(sshd.path("inbox/recon_20261201.csv"), csv(1)).unwrap();
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = |ids: &Arc<Mutex<Vec<String>>>| {
        let ids = ids.clone();
        move |p: hub_files::sftp::PickedFile| {
            ids.lock().unwrap().push(p.pickup_id);
            std::future::ready(Ok::<(), FileError>(()))
        }
    };
    let job = pickup(&sshd, work.path(), false).await;
    assert_eq!(
        job.run_once(record(&ids)).await.unwrap().handed_over.len(),
        1
    );
    // The process died after the handler succeeded and before the ledger said so.
    let meta = std::fs::metadata(sshd.path("inbox/recon_20261201.csv")).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    job.state
        .advance_file_pickup(
            "finance-recon",
            "recon_20261201.csv",
            meta.len() as i64,
            mtime,
            "claimed",
        )
        .await
        .unwrap();
    job.state.close().await;
    let job = pickup(&sshd, work.path(), false).await;
    assert_eq!(
        job.run_once(record(&ids)).await.unwrap().handed_over.len(),
        1
    );
    assert_eq!(
        job.run_once(record(&ids)).await.unwrap().handed_over.len(),
        0
    );
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the repeat carries the same pickup id, for the handler to recognise"
    );
    assert_eq!(
        ids[0],
        format!("finance-recon/recon_20261201.csv/{}/{mtime}", meta.len())
    );
}
