//! Shared pieces of hub-files' tests: key rings, sample files, streams that fail.
#![allow(dead_code)]

pub mod sshd;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use hub_files::{FileError, FileErrorCode};
use hub_security::field::{FieldCipher, KeyRing};

/// A key ring whose current key is `current` and that also holds `others`.
pub fn cipher(current: &str, others: &[&str]) -> FieldCipher {
    let mut text = format!("current = \"{current}\"\n[keys]\n");
    // Each key's bytes follow from its id, so rings built differently agree on a key.
    for id in std::iter::once(&current).chain(others) {
        let key = hub_security::sm::sm3(id.as_bytes());
        text.push_str(&format!("\"{id}\" = \"{}\"\n", hex::encode(&key[..16])));
    }
    FieldCipher::new(KeyRing::from_toml(&text).unwrap())
}

/// A PDF-looking file of `len` bytes whose content depends on `seed`, with a recognisable
/// marker (a fake ID number) repeated through it.
pub fn pdf(len: usize, seed: u8) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n% payer 310101199001011234\n".to_vec();
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    while v.len() < len {
        if v.len().is_multiple_of(4096) {
            v.extend_from_slice(b"310101199001011234");
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(x as u8);
        }
    }
    v.truncate(len);
    v
}

pub fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    v.extend_from_slice(&[0u8; 64]);
    v
}

/// `data` in pieces of `piece` bytes.
pub fn pieces(data: Vec<u8>, piece: usize) -> BoxStream<'static, Result<Bytes, FileError>> {
    let chunks: Vec<Result<Bytes, FileError>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

/// `data` in pieces, then the sender goes away (the connection broke).
pub fn broken_after(data: Vec<u8>, piece: usize) -> BoxStream<'static, Result<Bytes, FileError>> {
    pieces(data, piece)
        .chain(stream::iter([Err(FileError::new(
            FileErrorCode::UploadIncomplete,
            "the client went away",
        ))]))
        .boxed()
}

/// `data` in pieces, then nothing more, ever (a hung sender).
pub fn stalled_after(data: Vec<u8>, piece: usize) -> BoxStream<'static, Result<Bytes, FileError>> {
    pieces(data, piece).chain(stream::pending()).boxed()
}

use hub_files::{FileId, FileStore, PutOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Every object the backend lists under `prefix`.
pub async fn listed(store: &FileStore, prefix: &str) -> Vec<String> {
    let p = Path::from(prefix);
    store
        .backend()
        .list(Some(&p))
        .map(|o| o.unwrap().location.to_string())
        .collect::<Vec<_>>()
        .await
}

/// The raw bytes the backend holds for a file.
pub async fn raw(store: &FileStore, id: &FileId) -> Vec<u8> {
    let meta = store.head(id).await.unwrap();
    store
        .backend()
        .get(&store.object_location(&meta))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// A file is stored and read back with the same SM3, clear at rest when not personal.
pub async fn stored_and_read_back(store: &FileStore) {
    let data = pdf(300_000, 1);
    let meta = store
        .put_stream(
            pieces(data.clone(), 10_000),
            &PutOptions::default().declared("application/pdf"),
        )
        .await
        .unwrap();
    assert_eq!(meta.id.sm3_hex(), hub_security::sm::sm3_hex(&data));
    assert_eq!(
        meta.id.to_string(),
        format!("sm3:{}", hub_security::sm::sm3_hex(&data))
    );
    assert_eq!(
        (meta.size, meta.media_type.as_str(), meta.encrypted),
        (300_000, "application/pdf", false)
    );
    let (again, back) = store.read_all(&meta.id, u64::MAX).await.unwrap();
    assert_eq!(again, meta);
    assert_eq!(hub_security::sm::sm3_hex(&back), meta.id.sm3_hex());
    assert_eq!(back.as_ref(), data.as_slice());
    assert_eq!(
        raw(store, &meta.id).await,
        data,
        "a non-personal file is kept as is"
    );
    // The same content again: the same id, still one object and one metadata file.
    let twice = store
        .put_bytes(Bytes::from(data.clone()), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(twice.id, meta.id);
    let hex = meta.id.sm3_hex();
    let mine: Vec<String> = listed(store, "objects")
        .await
        .into_iter()
        .filter(|p| p.contains(&hex))
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
}

/// A personal file is encrypted at rest under the ring's current key, read back clear with the
/// same SM3, and a clear copy of the same content does not survive.
pub async fn personal_files_are_encrypted_at_rest(store: &FileStore) {
    let data = pdf(200_000, 2);
    // First stored as not personal, then as personal: the encrypted copy replaces the clear one.
    let clear = store
        .put_bytes(Bytes::from(data.clone()), &PutOptions::default())
        .await
        .unwrap();
    assert!(!clear.encrypted);
    let meta = store
        .put_stream(
            pieces(data.clone(), 7_000),
            &PutOptions::default().personal(true),
        )
        .await
        .unwrap();
    assert_eq!(meta.id, clear.id);
    assert!(meta.encrypted);
    assert_eq!(meta.key_id.as_deref(), Some("k1"));
    let stored = raw(store, &meta.id).await;
    assert!(stored.starts_with(b"HUBFSM4\x01"));
    assert_ne!(stored, data);
    assert!(
        !stored.windows(18).any(|w| w == b"310101199001011234"),
        "the ID number must not be on disk in clear"
    );
    assert!(!stored.windows(9).any(|w| w == b"%PDF-1.7\n"));
    let hex = meta.id.sm3_hex();
    let mine: Vec<String> = listed(store, "objects")
        .await
        .into_iter()
        .filter(|p| p.contains(&hex))
        .collect();
    assert!(
        mine.iter().all(|p| p.contains(".sm4")),
        "the clear copy is gone: {mine:?}"
    );
    let (_, back) = store.read_all(&meta.id, u64::MAX).await.unwrap();
    assert_eq!(hub_security::sm::sm3_hex(&back), hex);
    assert_eq!(back.as_ref(), data.as_slice());
    // Stored again as not personal: it stays encrypted.
    let later = store
        .put_bytes(Bytes::from(data), &PutOptions::default())
        .await
        .unwrap();
    assert!(later.encrypted);
}

/// Refusals (type, size, a broken sender) leave nothing referencable and no temporary object.
pub async fn refusals_leave_nothing(store: &FileStore) {
    let before = listed(store, "objects").await;
    let e = store
        .put_bytes(
            Bytes::from(png()),
            &PutOptions::default().declared("application/pdf"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TypeMismatch, "{e}");
    let e = store
        .put_bytes(
            Bytes::from_static(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"),
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TypeUnrecognised, "{e}");
    let e = store
        .put_bytes(
            Bytes::from(pdf(1000, 3)),
            &PutOptions::default().allowed(&[hub_files::MediaType::Png]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TypeNotAllowed, "{e}");
    let e = store
        .put_bytes(Bytes::new(), &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::Empty);
    // Text that turns binary after its first 64 KiB.
    let mut text = "流水号,金额\n".repeat(10_000).into_bytes();
    text.extend_from_slice(&[0u8; 100]);
    let e = store
        .put_stream(
            pieces(text, 4096),
            &PutOptions::default().declared("text/csv"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TypeMismatch, "{e}");

    // Too large, found only after 10 MiB were written (past the multipart threshold).
    let big = pdf(12 * 1024 * 1024, 4);
    let e = store
        .put_stream(
            pieces(big.clone(), 256 * 1024),
            &PutOptions::default().max_bytes(11 * 1024 * 1024),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, FileErrorCode::TooLarge, "{e}");
    assert!(store.head(&FileId::of(&big)).await.unwrap_err().code == FileErrorCode::NotFound);
    // The sender goes away after 9 MiB, personal or not.
    for personal in [false, true] {
        let e = store
            .put_stream(
                broken_after(big[..9 * 1024 * 1024].to_vec(), 300_000),
                &PutOptions::default().personal(personal),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::UploadIncomplete, "{e}");
        assert_eq!(
            store
                .head(&FileId::of(&big[..9 * 1024 * 1024]))
                .await
                .unwrap_err()
                .code,
            FileErrorCode::NotFound
        );
    }
    assert_eq!(
        listed(store, "objects").await,
        before,
        "no object and no metadata was added"
    );
    assert_eq!(
        listed(store, "tmp").await,
        Vec::<String>::new(),
        "no temporary object is left"
    );
}

/// A multipart-sized personal file (more than one 8 MiB part) streams in and out.
pub async fn a_large_personal_file_streams(store: &FileStore) {
    let data = pdf(9 * 1024 * 1024 + 123, 5);
    let meta = store
        .put_stream(
            pieces(data.clone(), 1024 * 1024),
            &PutOptions::default().personal(true),
        )
        .await
        .unwrap();
    let (m, mut s) = store.open(&meta.id).await.unwrap();
    assert_eq!(m.size, data.len() as u64);
    let mut hasher = <sm3::Sm3 as sm3::Digest>::new();
    let mut n = 0usize;
    let mut biggest = 0usize;
    while let Some(b) = s.next().await {
        let b = b.unwrap();
        sm3::Digest::update(&mut hasher, &b);
        assert_eq!(&data[n..n + b.len()], b.as_ref());
        n += b.len();
        biggest = biggest.max(b.len());
    }
    assert_eq!(n, data.len());
    assert_eq!(
        hex::encode(sm3::Digest::finalize(hasher)),
        meta.id.sm3_hex()
    );
    assert!(
        biggest < 16 * 1024 * 1024,
        "read in pieces, not whole: {biggest}"
    );
}
