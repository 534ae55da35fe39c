//! The file store: content-addressed, typed, size-limited, encrypted at rest when personal, and
//! never referencing anything half-written.
//!
//! Layout inside the backend (a folder for the local filesystem, a bucket for S3):
//!
//! ```text
//! tmp/<uuid v7>                   an upload in progress (multipart on S3)
//! objects/<aa>/<sm3 hex>.clear    the clear content            (aa = the first two hex digits)
//! objects/<aa>/<sm3 hex>.sm4      the encrypted content (crypt.rs format)
//! objects/<aa>/<sm3 hex>.<v>.json its metadata, written last
//! ```
//!
//! A put streams into `tmp/`, hashing the clear bytes as they pass, then moves the object into
//! place and writes its metadata; only then does it return the id. A file exists for the store
//! exactly when its metadata exists, and metadata is written only after its object is complete,
//! so an interrupted upload (a failed source stream, a size or type refusal, a crash) leaves at
//! most an unreferenced temporary object, which [`FileStore::remove_orphans`] deletes.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use hub_security::field::FieldCipher;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};
use tokio::io::AsyncWriteExt;

use crate::crypt::{Decryptor, Encryptor};
use crate::error::{FileError, FileErrorCode};
use crate::id::FileId;
use crate::media::{decide, text_chunk_ok, MediaType, SNIFF_BYTES};

/// Default upper bound of one file (100 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes buffered before an upload becomes a multipart upload, and the part size (S3 needs at
/// least 5 MiB per part).
const WRITE_BUFFER: usize = 8 * 1024 * 1024;

/// What a store accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub allowed: Vec<MediaType>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            allowed: MediaType::ALL.to_vec(),
        }
    }
}

/// How one file is put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The type the sender declared (`Content-Type`), checked against the content.
    pub declared_type: Option<String>,
    /// The file holds personal data: encrypt it at rest.
    pub personal: bool,
    /// A tighter size limit than the store's, for this put.
    pub max_bytes: Option<u64>,
    /// A narrower allow-list than the store's, for this put (intersected with the store's).
    pub allowed: Option<Vec<MediaType>>,
}

impl PutOptions {
    pub fn personal(mut self, personal: bool) -> Self {
        self.personal = personal;
        self
    }

    pub fn declared(mut self, media_type: impl Into<String>) -> Self {
        self.declared_type = Some(media_type.into());
        self
    }

    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    pub fn allowed(mut self, allowed: &[MediaType]) -> Self {
        self.allowed = Some(allowed.to_vec());
        self
    }
}

/// A stored file's metadata, kept as JSON beside its object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// `sm3:<hex>` of the clear content.
    pub id: FileId,
    /// Size of the clear content in bytes.
    pub size: u64,
    /// The media type, checked by magic bytes.
    pub media_type: String,
    /// Encrypted at rest (SM4-GCM, `docs/files.md`).
    pub encrypted: bool,
    /// The key ring's key that seals the file's data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Size of the stored object (header and tags included when encrypted).
    pub stored_size: u64,
    /// When the file was first stored (RFC 3339, UTC).
    pub created_at: String,
    /// Format version of the metadata and the object.
    pub format: u32,
}

impl FileMeta {
    pub fn media(&self) -> Option<MediaType> {
        MediaType::parse(&self.media_type)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Clear,
    Sealed,
}

impl Variant {
    fn ext(self) -> &'static str {
        match self {
            Variant::Clear => "clear",
            Variant::Sealed => "sm4",
        }
    }
}

fn object_path(id: &FileId, v: Variant) -> Path {
    let hex = id.sm3_hex();
    Path::from(format!("objects/{}/{hex}.{}", &hex[..2], v.ext()))
}

fn meta_path(id: &FileId, v: Variant) -> Path {
    let hex = id.sm3_hex();
    Path::from(format!("objects/{}/{hex}.{}.json", &hex[..2], v.ext()))
}

/// A stream of a stored file's clear bytes. It ends with an error item if the content does not
/// match its id or does not decrypt: a reader must discard what it got then, as for any
/// download cut short.
pub type FileStream = BoxStream<'static, Result<Bytes, FileError>>;

/// The file store. Cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    cipher: Option<FieldCipher>,
    limits: Limits,
    /// The folder of a local store, for fsync and for cleaning staged parts.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("backend", &self.inner.to_string())
            .field("encryption", &self.cipher.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl FileStore {
    /// A store over any `object_store` backend.
    pub fn new(inner: Arc<dyn ObjectStore>, cipher: Option<FieldCipher>, limits: Limits) -> Self {
        Self {
            inner,
            cipher,
            limits,
            local_root: None,
        }
    }

    /// A store in a local folder (created if missing).
    pub fn local(
        root: &FsPath,
        cipher: Option<FieldCipher>,
        limits: Limits,
    ) -> Result<Self, FileError> {
        std::fs::create_dir_all(root).map_err(|e| {
            FileError::new(
                FileErrorCode::ConfigInvalid,
                format!("cannot create {}: {e}", root.display()),
            )
        })?;
        let root = root.canonicalize().map_err(|e| {
            FileError::new(
                FileErrorCode::ConfigInvalid,
                format!("cannot resolve {}: {e}", root.display()),
            )
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| FileError::new(FileErrorCode::ConfigInvalid, e.to_string()))?;
        Ok(Self {
            inner: Arc::new(fs),
            cipher,
            limits,
            local_root: Some(root),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The backend, for tests and tools that must look at the stored bytes.
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The path of a file's stored object inside the backend (tests check it is not clear).
    pub fn object_location(&self, meta: &FileMeta) -> Path {
        object_path(
            &meta.id,
            if meta.encrypted {
                Variant::Sealed
            } else {
                Variant::Clear
            },
        )
    }

    /// Stores bytes already in memory.
    pub async fn put_bytes(&self, bytes: Bytes, opts: &PutOptions) -> Result<FileMeta, FileError> {
        self.put_stream(futures::stream::iter([Ok(bytes)]), opts)
            .await
    }

    /// Stores a stream of bytes. An error item from the stream aborts the put (nothing is
    /// referencable afterwards) and is returned as is, so a caller's own refusal keeps its code.
    pub async fn put_stream<S>(&self, stream: S, opts: &PutOptions) -> Result<FileMeta, FileError>
    where
        S: futures::Stream<Item = Result<Bytes, FileError>> + Send,
    {
        let mut stream = std::pin::pin!(stream);
        let max = opts
            .max_bytes
            .map_or(self.limits.max_bytes, |m| m.min(self.limits.max_bytes));
        let allowed: Vec<MediaType> = match &opts.allowed {
            Some(a) => a
                .iter()
                .copied()
                .filter(|m| self.limits.allowed.contains(m))
                .collect(),
            None => self.limits.allowed.clone(),
        };
        let too_large = || {
            FileError::new(
                FileErrorCode::TooLarge,
                format!("the file is larger than {max} bytes"),
            )
        };

        // The head decides the type before anything is written.
        let mut head = BytesMut::new();
        let mut ended = false;
        while head.len() < SNIFF_BYTES {
            match stream.next().await {
                Some(Ok(b)) => head.extend_from_slice(&b),
                Some(Err(e)) => return Err(e),
                None => {
                    ended = true;
                    break;
                }
            }
            if head.len() as u64 > max {
                return Err(too_large());
            }
        }
        if head.is_empty() {
            return Err(FileError::new(FileErrorCode::Empty, "no bytes were sent"));
        }
        let media = decide(
            &head[..head.len().min(SNIFF_BYTES)],
            opts.declared_type.as_deref(),
            &allowed,
        )?;
        let mut encryptor = if opts.personal {
            let cipher = self.cipher.as_ref().ok_or_else(|| {
                FileError::new(
                    FileErrorCode::EncryptionUnavailable,
                    "a personal file must be encrypted, and the store has no key ring",
                )
            })?;
            Some(Encryptor::new(cipher)?)
        } else {
            None
        };

        let key_id = encryptor.as_ref().map(|e| e.key_id().to_string());
        let tmp = Path::from(format!("tmp/{}", uuid::Uuid::now_v7()));
        let mut writer = BufWriter::with_capacity(self.inner.clone(), tmp.clone(), WRITE_BUFFER);
        let mut hasher = Sm3::new();
        let mut size: u64 = 0;
        let mut stored: u64 = 0;

        let mut shutting_down = false;
        let written: Result<(), FileError> = async {
            if let Some(enc) = &encryptor {
                let h = Bytes::copy_from_slice(enc.header());
                stored += h.len() as u64;
                writer.put(h).await.map_err(FileError::store)?;
            }
            let mut next = Some(head.freeze());
            loop {
                let chunk = match next.take() {
                    Some(c) => c,
                    None if ended => break,
                    None => match stream.next().await {
                        Some(Ok(c)) => c,
                        Some(Err(e)) => return Err(e),
                        None => break,
                    },
                };
                size += chunk.len() as u64;
                if size > max {
                    return Err(too_large());
                }
                if media.is_text() && !text_chunk_ok(&chunk) {
                    return Err(FileError::new(
                        FileErrorCode::TypeMismatch,
                        format!("{media} holds binary bytes past its first part"),
                    ));
                }
                hasher.update(&chunk);
                let out = match &mut encryptor {
                    Some(enc) => Bytes::from(enc.push(&chunk)?),
                    None => chunk,
                };
                if !out.is_empty() {
                    stored += out.len() as u64;
                    writer.put(out).await.map_err(FileError::store)?;
                }
            }
            if let Some(enc) = encryptor.take() {
                let last = Bytes::from(enc.finish()?);
                stored += last.len() as u64;
                writer.put(last).await.map_err(FileError::store)?;
            }
            shutting_down = true;
            writer
                .shutdown()
                .await
                .map_err(|e| FileError::new(FileErrorCode::StoreUnavailable, e.to_string()))
        }
        .await;
        if let Err(e) = written {
            // A multipart upload in progress is aborted; a single put never happened. Either
            // way nothing was moved into place.
            if !shutting_down {
                let _ = writer.abort().await;
            }
            let _ = self.inner.delete(&tmp).await;
            return Err(e);
        }

        let id = FileId::from_digest(hasher.finalize().into());
        let meta = FileMeta {
            id,
            size,
            media_type: media.as_str().to_string(),
            encrypted: opts.personal,
            key_id,
            stored_size: stored,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            format: 1,
        };
        self.commit(&tmp, meta).await
    }

    /// Moves a complete temporary object into place and writes its metadata, or keeps the copy
    /// already stored. Encrypted wins: content stored both ways ends encrypted only.
    async fn commit(&self, tmp: &Path, meta: FileMeta) -> Result<FileMeta, FileError> {
        let id = meta.id;
        if let Some(existing) = self.read_meta(&id, Variant::Sealed).await? {
            let _ = self.inner.delete(tmp).await;
            return Ok(existing);
        }
        let variant = if meta.encrypted {
            Variant::Sealed
        } else {
            Variant::Clear
        };
        if variant == Variant::Clear {
            if let Some(existing) = self.read_meta(&id, Variant::Clear).await? {
                let _ = self.inner.delete(tmp).await;
                return Ok(existing);
            }
        }
        let object = object_path(&id, variant);
        self.inner
            .rename(tmp, &object)
            .await
            .map_err(FileError::store)?;
        self.sync_local(&object).await?;
        let json = serde_json::to_vec(&meta).expect("metadata serialises");
        let mpath = meta_path(&id, variant);
        self.inner
            .put(&mpath, PutPayload::from(json))
            .await
            .map_err(FileError::store)?;
        self.sync_local(&mpath).await?;
        match variant {
            // A clear copy of the same content must not outlive the encrypted one.
            Variant::Sealed => self.remove_variant(&id, Variant::Clear).await?,
            Variant::Clear => {
                if let Some(sealed) = self.read_meta(&id, Variant::Sealed).await? {
                    self.remove_variant(&id, Variant::Clear).await?;
                    return Ok(sealed);
                }
            }
        }
        tracing::debug!(file = %id, size = meta.size, media_type = %meta.media_type, encrypted = meta.encrypted, "file stored");
        Ok(meta)
    }

    async fn remove_variant(&self, id: &FileId, v: Variant) -> Result<(), FileError> {
        for p in [meta_path(id, v), object_path(id, v)] {
            match self.inner.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(FileError::store(e)),
            }
        }
        Ok(())
    }

    async fn read_meta(&self, id: &FileId, v: Variant) -> Result<Option<FileMeta>, FileError> {
        match self.inner.get(&meta_path(id, v)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(FileError::store)?;
                let meta: FileMeta = serde_json::from_slice(&bytes).map_err(|e| {
                    FileError::new(
                        FileErrorCode::Integrity,
                        format!("the metadata of {id} is unreadable: {e}"),
                    )
                })?;
                Ok(Some(meta))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(FileError::store(e)),
        }
    }

    /// A file's metadata; `FILE_NOT_FOUND` when it was never completely stored.
    pub async fn head(&self, id: &FileId) -> Result<FileMeta, FileError> {
        if let Some(m) = self.read_meta(id, Variant::Sealed).await? {
            return Ok(m);
        }
        self.read_meta(id, Variant::Clear)
            .await?
            .ok_or_else(|| FileError::new(FileErrorCode::NotFound, format!("no file {id}")))
    }

    /// Opens a file for reading: its metadata and a stream of its clear bytes, decrypted and
    /// checked against its SM3 and size as they stream.
    pub async fn open(&self, id: &FileId) -> Result<(FileMeta, FileStream), FileError> {
        let meta = self.head(id).await?;
        let got = self
            .inner
            .get(&self.object_location(&meta))
            .await
            .map_err(FileError::store)?;
        let source = got.into_stream();
        let cipher = if meta.encrypted {
            Some(self.cipher.clone().ok_or_else(|| {
                FileError::new(
                    FileErrorCode::EncryptionUnavailable,
                    "the file is encrypted, and the store has no key ring",
                )
            })?)
        } else {
            None
        };
        let reader = Reader {
            source,
            cipher,
            decryptor: None,
            pending: Vec::new(),
            hasher: Sm3::new(),
            size: 0,
            expect: meta.clone(),
            done: false,
        };
        let stream = futures::stream::unfold(reader, |mut r| async move {
            if r.done {
                return None;
            }
            let item = r.step().await;
            match item {
                Some(Ok(b)) => Some((Ok(b), r)),
                Some(Err(e)) => {
                    r.done = true;
                    Some((Err(e), r))
                }
                None => None,
            }
        })
        .boxed();
        Ok((meta, stream))
    }

    /// Reads a whole file into memory (for small files: base64 fields, tests), refusing one
    /// larger than `max`.
    pub async fn read_all(&self, id: &FileId, max: u64) -> Result<(FileMeta, Bytes), FileError> {
        let (meta, mut stream) = self.open(id).await?;
        if meta.size > max {
            return Err(FileError::new(
                FileErrorCode::TooLarge,
                format!("{id} has {} bytes, more than {max}", meta.size),
            ));
        }
        let mut out = BytesMut::with_capacity(meta.size as usize);
        while let Some(b) = stream.next().await {
            out.extend_from_slice(&b?);
        }
        Ok((meta, out.freeze()))
    }

    /// Deletes a file, both its clear and its encrypted copy, metadata first (so it stops
    /// existing for readers at once; an object left without metadata by a crash is an orphan
    /// [`FileStore::remove_orphans`] removes). `false`: there was no such file. Only for the
    /// sweep of files no record references ([`crate::sweep`]): content addressing means any
    /// record naming the same content names this file.
    pub async fn delete(&self, id: &FileId) -> Result<bool, FileError> {
        let existed = self.read_meta(id, Variant::Sealed).await?.is_some()
            || self.read_meta(id, Variant::Clear).await?.is_some();
        self.remove_variant(id, Variant::Sealed).await?;
        self.remove_variant(id, Variant::Clear).await?;
        Ok(existed)
    }

    /// Deletes what interrupted uploads left: temporary objects (and, for a local store, staged
    /// multipart parts) and objects whose metadata was never written, when older than `grace`
    /// (an upload in progress is younger). Returns how many were removed. On S3 an interrupted
    /// multipart upload's parts are not objects: a bucket lifecycle rule
    /// (`AbortIncompleteMultipartUpload`) removes them (`docs/files.md`).
    pub async fn remove_orphans(&self, grace: Duration) -> Result<usize, FileError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
        let mut removed = 0;
        if let Some(root) = &self.local_root {
            // Staged parts (`tmp/<id>#<n>`) are hidden from listings: walk the folder.
            let dir = root.join("tmp");
            let cutoff_sys = std::time::SystemTime::now()
                .checked_sub(grace)
                .unwrap_or(std::time::UNIX_EPOCH);
            removed += tokio::task::spawn_blocking(move || -> usize {
                let mut n = 0;
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    for e in entries.flatten() {
                        let old = e
                            .metadata()
                            .and_then(|m| m.modified())
                            .is_ok_and(|t| t < cutoff_sys);
                        if old && std::fs::remove_file(e.path()).is_ok() {
                            n += 1;
                        }
                    }
                }
                n
            })
            .await
            .unwrap_or(0);
        } else {
            let tmp = Path::from("tmp");
            let mut listing = self.inner.list(Some(&tmp));
            while let Some(o) = listing.next().await {
                let o = o.map_err(FileError::store)?;
                if o.last_modified < cutoff {
                    match self.inner.delete(&o.location).await {
                        Ok(()) => removed += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(FileError::store(e)),
                    }
                }
            }
        }
        // Objects moved into place whose metadata never followed.
        let objects = Path::from("objects");
        let mut all = Vec::new();
        let mut listing = self.inner.list(Some(&objects));
        while let Some(o) = listing.next().await {
            all.push(o.map_err(FileError::store)?);
        }
        let names: std::collections::HashSet<String> =
            all.iter().map(|o| o.location.to_string()).collect();
        for o in &all {
            let name = o.location.to_string();
            if name.ends_with(".json") || o.last_modified >= cutoff {
                continue;
            }
            if !names.contains(&format!("{name}.json")) {
                match self.inner.delete(&o.location).await {
                    Ok(()) => removed += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(FileError::store(e)),
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "file store: orphaned upload leftovers removed");
        }
        Ok(removed)
    }

    /// Makes a local file and its folder durable (the S3 backend answers only once durable).
    async fn sync_local(&self, p: &Path) -> Result<(), FileError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(p.as_ref());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| FileError::new(FileErrorCode::StoreUnavailable, e.to_string()))?
        .map_err(|e| FileError::new(FileErrorCode::StoreUnavailable, format!("fsync: {e}")))
    }
}

/// Reads a stored object, decrypting and checking as it goes.
struct Reader {
    source: BoxStream<'static, object_store::Result<Bytes>>,
    cipher: Option<FieldCipher>,
    decryptor: Option<Decryptor>,
    /// Stored bytes read before the encryption header was complete.
    pending: Vec<u8>,
    hasher: Sm3,
    size: u64,
    expect: FileMeta,
    done: bool,
}

impl Reader {
    fn clear(&mut self, b: Vec<u8>) -> Result<Bytes, FileError> {
        self.hasher.update(&b);
        self.size += b.len() as u64;
        if self.size > self.expect.size {
            return Err(FileError::new(
                FileErrorCode::Integrity,
                format!("{} is longer than its metadata says", self.expect.id),
            ));
        }
        Ok(Bytes::from(b))
    }

    fn verify(&mut self) -> Result<(), FileError> {
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if self.size != self.expect.size || &digest != self.expect.id.digest() {
            return Err(FileError::new(
                FileErrorCode::Integrity,
                format!("the stored content does not match {}", self.expect.id),
            ));
        }
        Ok(())
    }

    /// The next piece of clear content; `None` at a verified end.
    async fn step(&mut self) -> Option<Result<Bytes, FileError>> {
        loop {
            let next = self.source.next().await;
            if self.cipher.is_none() {
                // A clear object (or the end of an encrypted one).
                return match next {
                    Some(Ok(b)) => Some(self.clear(b.to_vec())),
                    Some(Err(e)) => Some(Err(FileError::store(e))),
                    None => match self.verify() {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    },
                };
            }
            match next {
                Some(Ok(b)) => {
                    let plain = if let Some(d) = &mut self.decryptor {
                        d.push(&b)
                    } else {
                        self.pending.extend_from_slice(&b);
                        let cipher = self.cipher.as_ref().expect("encrypted");
                        match Decryptor::from_header(&self.pending, cipher) {
                            Ok(None) => continue,
                            Ok(Some((mut d, used))) => {
                                let rest = self.pending.split_off(used);
                                self.pending.clear();
                                let r = d.push(&rest);
                                self.decryptor = Some(d);
                                r
                            }
                            Err(e) => Err(e),
                        }
                    };
                    match plain {
                        Ok(p) if p.is_empty() => continue,
                        Ok(p) => return Some(self.clear(p)),
                        Err(e) => return Some(Err(e)),
                    }
                }
                Some(Err(e)) => return Some(Err(FileError::store(e))),
                None => {
                    let Some(d) = self.decryptor.take() else {
                        return Some(Err(FileError::new(
                            FileErrorCode::Integrity,
                            "the encrypted object is cut short before its header ends",
                        )));
                    };
                    let last = match d.finish() {
                        Ok(p) => p,
                        Err(e) => return Some(Err(e)),
                    };
                    // Mark the end so the next step verifies.
                    self.cipher = None;
                    self.source = futures::stream::empty().boxed();
                    if last.is_empty() {
                        continue;
                    }
                    return Some(self.clear(last));
                }
            }
        }
    }
}
