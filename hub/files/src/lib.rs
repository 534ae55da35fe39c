//! The hub's file store and file exchange, a building block for adapters (`docs/files.md`):
//!
//! * [`store`]: binary files (payment-notice PDFs, licence files and thumbnails, batch files)
//!   kept content-addressed by SM3 ([`FileId`], `sm3:<hex>`), typed by magic bytes, size-limited,
//!   encrypted with SM4-GCM at rest when personal ([`crypt`] describes the format), on the local
//!   filesystem or any S3-compatible service through `object_store`; nothing half-written is
//!   ever referencable;
//! * [`transfer`]: receiving files (multipart/form-data, base64 in a field, a URL the hub
//!   fetches) and sending them the same three ways;
//! * [`sftp`]: batch files exchanged with a partner over SFTP, each picked up once and only once
//!   (the ledger is in the hub's state store);
//! * [`config`]: the `[files]` section;
//! * [`error`]: every refusal with a stable code.

pub mod config;
pub mod crypt;
pub mod error;
pub mod id;
pub mod media;
pub mod sftp;
pub mod store;
pub mod sweep;
pub mod transfer;
pub mod wiring;

pub use error::{FileError, FileErrorCode};
pub use id::FileId;
pub use media::MediaType;
pub use store::{FileMeta, FileStore, FileStream, Limits, PutOptions};
