//! The file store on the local filesystem (the embedded default).

mod support;

use std::time::Duration;

use bytes::Bytes;
use hub_files::{FileErrorCode, FileId, FileStore, Limits, PutOptions};
use support::*;

fn store(dir: &std::path::Path) -> FileStore {
    FileStore::local(dir, Some(cipher("k1", &[])), Limits::default()).unwrap()
}

#[tokio::test]
async fn a_file_is_stored_and_read_back_with_the_same_sm3() {
    let dir = tempfile::tempdir().unwrap();
    stored_and_read_back(&store(dir.path())).await;
}

#[tokio::test]
async fn a_personal_file_is_encrypted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    personal_files_are_encrypted_at_rest(&s).await;
    // And on the disk itself, not only through the backend: no file holds the ID number.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(18).any(|w| w == b"310101199001011234"),
            "{}",
            entry.display()
        );
    }
}

#[tokio::test]
async fn refusals_and_broken_uploads_leave_nothing_referencable() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    refusals_leave_nothing(&s).await;
    // Not even a staged part hidden from listings.
    assert_eq!(
        walk(&dir.path().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test]
async fn a_large_personal_file_streams_through() {
    let dir = tempfile::tempdir().unwrap();
    a_large_personal_file_streams(&store(dir.path())).await;
}

#[tokio::test]
async fn an_upload_killed_midway_is_never_referencable_and_its_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let data = pdf(10 * 1024 * 1024, 9);
    // The sender hangs after 9 MiB; the put is then dropped, as a crash or a shutdown would.
    let put = {
        let s = s.clone();
        let part = data[..9 * 1024 * 1024].to_vec();
        tokio::spawn(async move {
            s.put_stream(stalled_after(part, 512 * 1024), &PutOptions::default())
                .await
        })
    };
    // Wait until the upload has spilled to disk (past the 8 MiB in-memory buffer).
    for _ in 0..600 {
        if !walk(&dir.path().join("tmp")).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    assert_eq!(
        s.head(&FileId::of(&data[..9 * 1024 * 1024]))
            .await
            .unwrap_err()
            .code,
        FileErrorCode::NotFound
    );
    assert!(listed(&s, "objects").await.is_empty());
    // A process killed mid-upload leaves its staged part (a dropped upload removes its own);
    // and a crash between moving an object into place and writing its metadata.
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(
        dir.path()
            .join("tmp/0193a5c2-dead-7000-8000-000000000000#1"),
        &data[..1000],
    )
    .unwrap();
    let half = dir.path().join("objects/ab");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join(format!("ab{}.clear", "0".repeat(62))), b"%PDF-").unwrap();
    // Young leftovers are kept (an upload may still be running); old ones go.
    assert_eq!(
        s.remove_orphans(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.remove_orphans(Duration::ZERO).await.unwrap() >= 2);
    assert!(walk(&dir.path().join("tmp")).is_empty());
    assert!(listed(&s, "objects").await.is_empty());
    // The store still works afterwards.
    let meta = s
        .put_bytes(Bytes::from(data.clone()), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(meta.id, FileId::of(&data));
}

#[tokio::test]
async fn keys_rotate_and_a_missing_key_or_ring_is_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let old = FileStore::local(dir.path(), Some(cipher("k1", &[])), Limits::default()).unwrap();
    let a = old
        .put_bytes(
            Bytes::from(pdf(5000, 1)),
            &PutOptions::default().personal(true),
        )
        .await
        .unwrap();
    assert_eq!(a.key_id.as_deref(), Some("k1"));
    // Rotated: k2 encrypts, k1 still decrypts.
    let rotated =
        FileStore::local(dir.path(), Some(cipher("k2", &["k1"])), Limits::default()).unwrap();
    let b = rotated
        .put_bytes(
            Bytes::from(pdf(5000, 2)),
            &PutOptions::default().personal(true),
        )
        .await
        .unwrap();
    assert_eq!(b.key_id.as_deref(), Some("k2"));
    assert_eq!(
        rotated.read_all(&a.id, u64::MAX).await.unwrap().1.as_ref(),
        pdf(5000, 1).as_slice()
    );
    // A ring without k2 cannot read b; a store without a ring refuses personal files.
    let e = old.read_all(&b.id, u64::MAX).await.unwrap_err();
    assert_eq!(e.code, FileErrorCode::EncryptionUnavailable, "{e}");
    let no_ring = FileStore::local(dir.path(), None, Limits::default()).unwrap();
    let e = no_ring
        .put_bytes(
            Bytes::from(pdf(10, 3)),
            &PutOptions::default().personal(true),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::EncryptionUnavailable);
    assert_eq!(
        no_ring.read_all(&a.id, u64::MAX).await.unwrap_err().code,
        FileErrorCode::EncryptionUnavailable
    );
}

#[tokio::test]
async fn damaged_objects_are_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for personal in [false, true] {
        let data = pdf(150_000 + usize::from(personal), 7);
        let meta = s
            .put_bytes(Bytes::from(data), &PutOptions::default().personal(personal))
            .await
            .unwrap();
        let path = dir.path().join(s.object_location(&meta).as_ref());
        let mut bytes = std::fs::read(&path).unwrap();
        let i = bytes.len() - 100;
        bytes[i] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let e = s.read_all(&meta.id, u64::MAX).await.unwrap_err();
        assert_eq!(e.code, FileErrorCode::Integrity, "personal {personal}: {e}");
    }
    let e = s.head(&FileId::of(b"never stored")).await.unwrap_err();
    assert_eq!(e.code, FileErrorCode::NotFound);
    let big = s
        .put_bytes(Bytes::from(pdf(2000, 8)), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        s.read_all(&big.id, 1000).await.unwrap_err().code,
        FileErrorCode::TooLarge
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
