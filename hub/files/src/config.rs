//! `[files]`: where the file store keeps files and what it accepts (`docs/configuration.md`).
//!
//! ```toml
//! [files]
//! backend = "local"               # "local" (default) or "s3"
//! dir = "var/files"               # local folder, relative to the configuration file
//! max_bytes = 104857600           # 100 MiB
//! allowed_types = ["application/pdf", "image/png", "image/jpeg", "application/ofd", "text/csv"]
//!
//! [files.s3]                      # with backend = "s3"
//! endpoint = "https://s3.internal.example:9000"   # absent: AWS itself
//! bucket = "hub-files"
//! region = "cn-east-1"
//! access_key_id = "hub"
//! secret_access_key_file = "/run/secrets/s3-secret"  # or secret_access_key (from HUB_FILES__S3__SECRET_ACCESS_KEY)
//! path_style = true
//!
//! # Download links the hub serves (a delivery's `file.style = "url"`)
//! download_base_url = "https://hub.example.gov.cn"   # the gateway as partners reach it
//! download_secret_file = "/run/secrets/hub-download"  # or HUB_FILES__DOWNLOAD_SECRET; >= 16 bytes
//! download_ttl_seconds = 86400
//! ```

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use hub_config::{join_key, Invalid, Validate};
use hub_security::field::FieldCipher;
use serde::Deserialize;

use crate::error::{FileError, FileErrorCode};
use crate::media::MediaType;
use crate::store::{FileStore, Limits, DEFAULT_MAX_BYTES};
use crate::transfer::DownloadLinks;

/// Where files are kept.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    S3,
}

/// `[files]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    #[serde(default)]
    pub backend: Backend,
    /// The local store's folder; relative paths are relative to the configuration file.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Largest file accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Media types accepted (checked by magic bytes); absent: every type the store knows.
    #[serde(default)]
    pub allowed_types: Option<Vec<String>>,
    /// Temporary objects older than this are interrupted uploads and are removed.
    #[serde(default = "default_orphan_grace_minutes")]
    pub orphan_grace_minutes: u64,
    /// Files stored for a push whose record was never acknowledged by Kafka are removed once
    /// held provisional this long (`docs/files.md`, "Files no record references").
    #[serde(default = "default_unreferenced_grace_minutes")]
    pub unreferenced_grace_minutes: u64,
    #[serde(default)]
    pub s3: Option<S3Section>,
    /// The public URL of the gateway as partners reach it (scheme, host, any path prefix a
    /// proxy adds); download links are `<download_base_url>/v1/files/<file id>?…`. Needed by
    /// a delivery that sends its file as a URL.
    #[serde(default)]
    pub download_base_url: Option<String>,
    /// The secret download links are signed with, best from the environment
    /// (`HUB_FILES__DOWNLOAD_SECRET`); at least 16 bytes.
    #[serde(default)]
    pub download_secret: Option<String>,
    /// A file holding that secret (trailing whitespace ignored).
    #[serde(default)]
    pub download_secret_file: Option<PathBuf>,
    /// How long a link stays valid, in seconds.
    #[serde(default = "default_download_ttl_seconds")]
    pub download_ttl_seconds: u64,
}

impl std::fmt::Debug for FilesSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the download secret.
        f.debug_struct("FilesSection")
            .field("backend", &self.backend)
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("allowed_types", &self.allowed_types)
            .field("orphan_grace_minutes", &self.orphan_grace_minutes)
            .field("s3", &self.s3)
            .field("download_base_url", &self.download_base_url)
            .field("download_secret_file", &self.download_secret_file)
            .field("download_ttl_seconds", &self.download_ttl_seconds)
            .finish_non_exhaustive()
    }
}

/// The path under the gateway's public URL that serves download links.
pub const DOWNLOAD_PATH: &str = "/v1/files";

fn default_dir() -> PathBuf {
    PathBuf::from("var/files")
}
fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}
fn default_orphan_grace_minutes() -> u64 {
    60
}
fn default_download_ttl_seconds() -> u64 {
    86_400
}

fn default_unreferenced_grace_minutes() -> u64 {
    1_440
}

impl Default for FilesSection {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            dir: default_dir(),
            max_bytes: default_max_bytes(),
            allowed_types: None,
            orphan_grace_minutes: default_orphan_grace_minutes(),
            unreferenced_grace_minutes: default_unreferenced_grace_minutes(),
            s3: None,
            download_base_url: None,
            download_secret: None,
            download_secret_file: None,
            download_ttl_seconds: default_download_ttl_seconds(),
        }
    }
}

/// `[files.s3]`: an S3-compatible service.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// The service's URL; absent: AWS S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: String,
    /// The secret, best set from the environment (`HUB_FILES__S3__SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// A file holding the secret (trailing whitespace ignored).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Path-style requests (`endpoint/bucket/key`), as most self-hosted services want.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint (a local test server only).
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Section")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}

impl Validate for FilesSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.max_bytes == 0 || self.max_bytes > 5 * 1024 * 1024 * 1024 {
            out.push(Invalid::new(
                join_key(prefix, "max_bytes"),
                format!("{} is outside 1..=5368709120 (5 GiB)", self.max_bytes),
            ));
        }
        if let Some(types) = &self.allowed_types {
            if types.is_empty() {
                out.push(Invalid::new(
                    join_key(prefix, "allowed_types"),
                    "must name at least one type (leave it out to allow every known type)",
                ));
            }
            for t in types {
                if MediaType::parse(t).is_none() {
                    out.push(Invalid::new(
                        join_key(prefix, "allowed_types"),
                        format!(
                            "`{t}` is not one of {}",
                            MediaType::ALL
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        if self.orphan_grace_minutes == 0 {
            out.push(Invalid::new(
                join_key(prefix, "orphan_grace_minutes"),
                "must be at least 1 (uploads in progress are younger than it)",
            ));
        }
        out.extend(self.download_problems(prefix));
        if self.unreferenced_grace_minutes < 10 {
            out.push(Invalid::new(
                join_key(prefix, "unreferenced_grace_minutes"),
                "must be at least 10 (longer than any push takes from storing its file to Kafka's acknowledgement)",
            ));
        }
        match (&self.backend, &self.s3) {
            (Backend::S3, None) => out.push(Invalid::new(
                join_key(prefix, "s3"),
                "backend = \"s3\" needs a [files.s3] section",
            )),
            (Backend::S3, Some(s3)) => out.extend(s3.validate(&join_key(prefix, "s3"))),
            (Backend::Local, _) => {}
        }
        out
    }
}

impl Validate for S3Section {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.bucket.trim().is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "bucket"),
                "must not be empty",
            ));
        }
        if self.access_key_id.trim().is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "access_key_id"),
                "must not be empty",
            ));
        }
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(_), Some(_)) => out.push(Invalid::new(
                join_key(prefix, "secret_access_key"),
                "set either secret_access_key or secret_access_key_file, not both",
            )),
            (None, None) => out.push(Invalid::new(
                join_key(prefix, "secret_access_key"),
                "set secret_access_key (from the environment) or secret_access_key_file",
            )),
            _ => {}
        }
        if let Some(e) = &self.endpoint {
            let ok = e.starts_with("https://") || (self.allow_http && e.starts_with("http://"));
            if !ok {
                out.push(Invalid::new(
                    join_key(prefix, "endpoint"),
                    format!("`{e}` must be an https:// URL (http:// only with allow_http = true)"),
                ));
            }
        }
        out
    }
}

impl FilesSection {
    fn download_problems(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let secret = self.download_secret.is_some() || self.download_secret_file.is_some();
        if self.download_secret.is_some() && self.download_secret_file.is_some() {
            out.push(Invalid::new(
                join_key(prefix, "download_secret"),
                "set either download_secret (from HUB_FILES__DOWNLOAD_SECRET) or download_secret_file, not both",
            ));
        }
        if let Some(s) = &self.download_secret {
            if s.len() < 16 {
                out.push(Invalid::new(
                    join_key(prefix, "download_secret"),
                    "must be at least 16 bytes",
                ));
            }
        }
        match &self.download_base_url {
            Some(u) => {
                let ok = (u.starts_with("https://") || u.starts_with("http://"))
                    && !u.contains(['?', '#'])
                    && u.len() > "http://".len();
                if !ok {
                    out.push(Invalid::new(
                        join_key(prefix, "download_base_url"),
                        format!("`{u}` must be an http(s) URL without query or fragment, e.g. https://hub.example.gov.cn"),
                    ));
                }
                if !secret {
                    out.push(Invalid::new(
                        join_key(prefix, "download_secret"),
                        "download_base_url needs a secret to sign links with: download_secret_file, or download_secret from HUB_FILES__DOWNLOAD_SECRET",
                    ));
                }
            }
            None if secret => out.push(Invalid::new(
                join_key(prefix, "download_base_url"),
                "a download secret is set but not the URL partners fetch links from",
            )),
            None => {}
        }
        if !(60..=30 * 86_400).contains(&self.download_ttl_seconds) {
            out.push(Invalid::new(
                join_key(prefix, "download_ttl_seconds"),
                format!(
                    "{} is outside 60..=2592000 (30 days)",
                    self.download_ttl_seconds
                ),
            ));
        }
        out
    }

    /// Whether the hub serves download links (`download_base_url` and a secret are set).
    pub fn serves_downloads(&self) -> bool {
        self.download_base_url.is_some()
            && (self.download_secret.is_some() || self.download_secret_file.is_some())
    }

    /// The download links the hub signs and serves, when configured; `base_dir` is the
    /// configuration file's folder (for `download_secret_file`).
    pub fn download_links(&self, base_dir: &FsPath) -> Result<Option<DownloadLinks>, FileError> {
        let Some(base) = &self.download_base_url else {
            return Ok(None);
        };
        let secret = match (&self.download_secret, &self.download_secret_file) {
            (Some(s), None) => s.clone().into_bytes(),
            (None, Some(f)) => {
                let p = if f.is_absolute() {
                    f.clone()
                } else {
                    base_dir.join(f)
                };
                std::fs::read_to_string(&p)
                    .map_err(|e| {
                        FileError::new(
                            FileErrorCode::ConfigInvalid,
                            format!("cannot read files.download_secret_file {}: {e}", p.display()),
                        )
                    })?
                    .trim_end()
                    .as_bytes()
                    .to_vec()
            }
            _ => {
                return Err(FileError::new(
                    FileErrorCode::ConfigInvalid,
                    "files.download_base_url needs exactly one of download_secret and download_secret_file",
                ))
            }
        };
        let base = format!("{}{DOWNLOAD_PATH}", base.trim_end_matches('/'));
        Ok(Some(DownloadLinks::new(&base, &secret)?.with_ttl(
            std::time::Duration::from_secs(self.download_ttl_seconds),
        )))
    }

    /// The limits the section sets.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_bytes,
            allowed: match &self.allowed_types {
                Some(t) => t.iter().filter_map(|t| MediaType::parse(t)).collect(),
                None => MediaType::ALL.to_vec(),
            },
        }
    }

    /// The age after which [`FileStore::remove_orphans`] treats a leftover as abandoned.
    pub fn orphan_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.orphan_grace_minutes.saturating_mul(60))
    }

    pub fn unreferenced_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.unreferenced_grace_minutes.saturating_mul(60))
    }

    /// Opens the store the section describes; `base_dir` is the configuration file's folder.
    /// `cipher` is the hub's key ring (personal files are refused without one).
    pub fn open(
        &self,
        base_dir: &FsPath,
        cipher: Option<FieldCipher>,
    ) -> Result<FileStore, FileError> {
        match self.backend {
            Backend::Local => {
                let dir = if self.dir.is_absolute() {
                    self.dir.clone()
                } else {
                    base_dir.join(&self.dir)
                };
                FileStore::local(&dir, cipher, self.limits())
            }
            Backend::S3 => {
                let s3 = self.s3.as_ref().ok_or_else(|| {
                    FileError::new(FileErrorCode::ConfigInvalid, "files.s3 is missing")
                })?;
                let store = s3.build(base_dir)?;
                Ok(FileStore::new(Arc::new(store), cipher, self.limits()))
            }
        }
    }
}

impl S3Section {
    /// The `object_store` client for this service.
    pub fn build(&self, base_dir: &FsPath) -> Result<object_store::aws::AmazonS3, FileError> {
        let secret =
            match (&self.secret_access_key, &self.secret_access_key_file) {
                (Some(s), None) => s.clone(),
                (None, Some(f)) => {
                    let p = if f.is_absolute() {
                        f.clone()
                    } else {
                        base_dir.join(f)
                    };
                    std::fs::read_to_string(&p)
                        .map_err(|e| {
                            FileError::new(
                                FileErrorCode::ConfigInvalid,
                                format!(
                                    "cannot read files.s3.secret_access_key_file {}: {e}",
                                    p.display()
                                ),
                            )
                        })?
                        .trim_end()
                        .to_string()
                }
                _ => return Err(FileError::new(
                    FileErrorCode::ConfigInvalid,
                    "files.s3 needs exactly one of secret_access_key and secret_access_key_file",
                )),
            };
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_allow_http(self.allow_http);
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        b.build()
            .map_err(|e| FileError::new(FileErrorCode::ConfigInvalid, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_local_store_under_var() {
        let s: FilesSection = toml::from_str("").unwrap();
        assert_eq!(s, FilesSection::default());
        assert!(s.validate("files").is_empty());
        assert_eq!(s.dir, PathBuf::from("var/files"));
    }

    #[test]
    fn a_local_section_opens_under_the_configuration_folder() {
        let dir = tempfile::tempdir().unwrap();
        let s: FilesSection =
            toml::from_str("max_bytes = 1000\nallowed_types = [\"text/csv\"]\n").unwrap();
        let store = s.open(dir.path(), None).unwrap();
        assert!(dir.path().join("var/files").is_dir());
        assert_eq!(store.limits().max_bytes, 1000);
        assert_eq!(store.limits().allowed, [MediaType::Csv]);
        assert_eq!(s.orphan_grace(), std::time::Duration::from_secs(3600));
        let s3: FilesSection = toml::from_str(
            "backend = \"s3\"\n[s3]\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key_file = \"missing\"\n",
        )
        .unwrap();
        let e = s3.open(dir.path(), None).unwrap_err();
        assert_eq!(e.code, FileErrorCode::ConfigInvalid);
    }

    #[test]
    fn download_links_need_a_base_url_and_one_secret_which_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let none: FilesSection = toml::from_str("").unwrap();
        assert!(!none.serves_downloads());
        assert!(none.download_links(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join("dl.secret"), "0123456789abcdef-secret\n").unwrap();
        let s: FilesSection = toml::from_str(
            "download_base_url = \"https://hub.example/\"\ndownload_secret_file = \"dl.secret\"\ndownload_ttl_seconds = 600\n",
        )
        .unwrap();
        assert!(s.validate("files").is_empty(), "{:?}", s.validate("files"));
        let links = s.download_links(dir.path()).unwrap().unwrap();
        assert_eq!(links.ttl(), std::time::Duration::from_secs(600));
        let id = crate::FileId::of(b"x");
        let link = links.issue(&id);
        assert!(link.starts_with(&format!("https://hub.example/v1/files/{id}?expires=")));
        let (_, query) = link.split_once('?').unwrap();
        let q: Vec<&str> = query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap().1)
            .collect();
        // Signed with the file's content, trailing newline dropped.
        let same =
            DownloadLinks::new("https://hub.example/v1/files", b"0123456789abcdef-secret").unwrap();
        assert_eq!(same.verify(&id.to_string(), q[0], q[1]).unwrap(), id);
        let env: FilesSection = toml::from_str(
            "download_base_url = \"ftp://x\"\ndownload_secret = \"short\"\ndownload_ttl_seconds = 1\n",
        )
        .unwrap();
        let keys: Vec<String> = env.validate("files").into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "files.download_secret",
                "files.download_base_url",
                "files.download_ttl_seconds"
            ]
        );
        assert!(!format!("{env:?}").contains("short"), "{env:?}");
        let half: FilesSection =
            toml::from_str("download_base_url = \"https://hub.example\"\n").unwrap();
        assert_eq!(half.validate("files")[0].key, "files.download_secret");
        assert!(!half.serves_downloads());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let s: FilesSection = toml::from_str(
            "backend = \"s3\"\nmax_bytes = 0\nallowed_types = [\"application/x-msdownload\"]\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"\"\naccess_key_id = \"a\"\n",
        )
        .unwrap();
        let keys: Vec<String> = s.validate("files").into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "files.max_bytes",
                "files.allowed_types",
                "files.s3.bucket",
                "files.s3.secret_access_key",
                "files.s3.endpoint"
            ]
        );
        let dbg = format!(
            "{:?}",
            toml::from_str::<S3Section>(
                "bucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"very-secret\"\n"
            )
            .unwrap()
        );
        assert!(!dbg.contains("very-secret"), "{dbg}");
    }
}
