//! The sweep of files no record references (`docs/files.md`, "Files no record references"),
//! with the real local file store and the real state store, on SQLite and on PostgreSQL
//! (`HUB_TEST_POSTGRES_URL`, a database created per test): a failed push's file is removed once
//! held provisional past the grace; a referenced file, a picked-up file and a file stored by
//! another path never are; a push meeting a sweep in progress is refused, then stores the file
//! again; concurrent sweepers remove each file once.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hub_files::sweep::remove_unreferenced;
use hub_files::{FileErrorCode, FileId, FileStore, PutOptions};
use hub_state::{FileHold, StateSection, StateStore};
use sqlx::Connection;

fn admin_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs `check` with a fresh local store and a SQLite state store, then with a fresh local
/// store and a state store in a PostgreSQL database of its own.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(FileStore, StateStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::local(&dir.path().join("files"), None, Default::default()).unwrap();
    let sqlite = StateSection {
        url: "sqlite://state/hub.db".into(),
        ..Default::default()
    };
    let state = StateStore::connect(&sqlite, dir.path()).await.unwrap();
    check(store, state.clone()).await;
    state.close().await;

    let admin = admin_url();
    let name = format!("hub_files_sweep_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test at {admin} (set HUB_TEST_POSTGRES_URL): {e}")
        });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let pg = StateSection {
        url: format!("{base}/{name}"),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::local(&dir.path().join("files"), None, Default::default()).unwrap();
    let state = StateStore::connect(&pg, dir.path()).await.unwrap();
    check(store, state.clone()).await;
    state.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn put(store: &FileStore, text: &str) -> FileId {
    store
        .put_bytes(Bytes::from(text.to_string()), &PutOptions::default())
        .await
        .unwrap()
        .id
}

async fn exists(store: &FileStore, id: &FileId) -> bool {
    match store.head(id).await {
        Ok(_) => true,
        Err(e) if e.code == FileErrorCode::NotFound => false,
        Err(e) => panic!("{e}"),
    }
}

const HOUR: Duration = Duration::from_secs(3_600);

#[tokio::test]
async fn only_files_held_provisional_past_the_grace_are_removed() {
    on_both(|store, state| async move {
        // A push whose record never reached Kafka; one whose record did; a pickup's file; a
        // file stored by another path (no row) that a failed push stored again.
        let failed = put(&store, "failed push\n").await;
        let acked = put(&store, "acknowledged push\n").await;
        let picked = put(&store, "picked up\n").await;
        let other = put(&store, "stored by another path\n").await;
        let ledger = put(&store, "named by the pickup ledger\n").await;
        for id in [&failed, &acked, &ledger] {
            let hold = state.hold_file(&id.to_string(), true).await.unwrap();
            assert_eq!(hold, FileHold::Provisional);
        }
        state.reference_files(&[acked.to_string()]).await.unwrap();
        state.reference_files(&[picked.to_string()]).await.unwrap();
        // A later failed push of the acknowledged or picked content leaves them referenced.
        for id in [&acked, &picked] {
            let hold = state.hold_file(&id.to_string(), true).await.unwrap();
            assert_eq!(hold, FileHold::Referenced);
        }
        let hold = state.hold_file(&other.to_string(), false).await.unwrap();
        assert_eq!(hold, FileHold::Untracked);
        assert!(state
            .claim_file_pickup("p/recon", "a.csv", 1, 1, &ledger.to_string())
            .await
            .unwrap());

        // Within the grace, nothing goes.
        assert_eq!(remove_unreferenced(&store, &state, HOUR).await.unwrap(), 0);
        assert!(exists(&store, &failed).await);
        // Past it, only the failed push's file, and its row.
        assert_eq!(
            remove_unreferenced(&store, &state, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert!(!exists(&store, &failed).await);
        assert_eq!(state.file_ref(&failed.to_string()).await.unwrap(), None);
        for id in [&acked, &picked, &other, &ledger] {
            assert!(exists(&store, id).await, "{id}");
        }
        assert_eq!(
            state.file_ref(&acked.to_string()).await.unwrap().as_deref(),
            Some("referenced")
        );
        assert_eq!(state.file_ref(&other.to_string()).await.unwrap(), None);
        assert_eq!(
            remove_unreferenced(&store, &state, Duration::ZERO)
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn a_push_meeting_a_sweep_in_progress_is_refused_then_stores_the_file_again() {
    on_both(|store, state| async move {
        let id = put(&store, "retried push\n").await;
        let key = id.to_string();
        assert_eq!(
            state.hold_file(&key, true).await.unwrap(),
            FileHold::Provisional
        );
        // A sweep claims it (as remove_unreferenced does first)…
        assert_eq!(
            state
                .claim_unreferenced_files(i64::MAX, 0, 10)
                .await
                .unwrap(),
            vec![key.clone()]
        );
        // …and the partner's retry stores the same content meanwhile: the put finds the file,
        // the hold finds it being swept, so the gateway refuses (503) instead of referencing it.
        assert_eq!(put(&store, "retried push\n").await, id);
        assert_eq!(
            state.hold_file(&key, true).await.unwrap(),
            FileHold::Sweeping
        );
        assert_eq!(
            state.hold_file(&key, false).await.unwrap(),
            FileHold::Sweeping
        );
        // A second sweeper does not claim it again while the first is at work.
        assert!(state
            .claim_unreferenced_files(i64::MAX, 0, 10)
            .await
            .unwrap()
            .is_empty());
        // The sweep ends: file first, then the row.
        assert!(store.delete(&id).await.unwrap());
        assert!(state.forget_swept_file(&key).await.unwrap());
        // The next retry stores the file again and holds it afresh.
        assert_eq!(put(&store, "retried push\n").await, id);
        assert_eq!(
            state.hold_file(&key, true).await.unwrap(),
            FileHold::Provisional
        );
        assert!(exists(&store, &id).await);
        // A sweep that stopped after its claim is taken up again once stale.
        state
            .claim_unreferenced_files(i64::MAX, 0, 10)
            .await
            .unwrap();
        assert_eq!(
            state
                .claim_unreferenced_files(i64::MIN, i64::MAX, 10)
                .await
                .unwrap(),
            vec![key.clone()]
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_sweepers_remove_each_file_once() {
    on_both(|store, state| async move {
        let mut ids = Vec::new();
        for i in 0..40 {
            let id = put(&store, &format!("failed push {i}\n")).await;
            state.hold_file(&id.to_string(), true).await.unwrap();
            ids.push(id);
        }
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (store, state) = (store.clone(), state.clone());
            tasks.push(tokio::spawn(async move {
                remove_unreferenced(&store, &state, Duration::ZERO)
                    .await
                    .unwrap()
            }));
        }
        let mut removed = 0;
        for t in tasks {
            removed += t.await.unwrap();
        }
        assert_eq!(removed, ids.len());
        for id in &ids {
            assert!(!exists(&store, id).await);
            assert_eq!(state.file_ref(&id.to_string()).await.unwrap(), None);
        }
    })
    .await;
}
