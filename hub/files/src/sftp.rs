//! Batch files exchanged with a partner over SFTP (pure Rust: `russh` and `russh-sftp`).
//!
//! * The server's host key is pinned by its SHA-256 fingerprint, written as `ssh-keygen -lf`
//!   prints it (`SHA256:…`); any other key ends the connection before authentication.
//! * Authentication by private key (OpenSSH or PKCS#8 file, optional passphrase) or password
//!   (from the environment through the configuration override, or from a file).
//! * [`Pickup`] lists a remote folder, stores each new file in the file store, records it in
//!   the hub's state store (`hub_file_pickups`) and hands it over, then optionally moves it to a
//!   remote done folder: each remote file is picked up once and only once, across restarts.
//! * [`SftpClient::upload`] writes a batch file under a temporary name (`.<name>.part`) and
//!   renames it when complete, so the partner never sees half a file.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hub_config::{join_key, Invalid, Validate};
use hub_state::StateStore;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{FileError, FileErrorCode};
use crate::id::FileId;
use crate::store::{FileMeta, FileStore, PutOptions};

/// One partner's SFTP server, as an adapter's or the hub's configuration names it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SftpSection {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// The server's host key fingerprint, `SHA256:<base64>` as `ssh-keygen -lf` prints it.
    pub host_key_sha256: String,
    /// A private key file (OpenSSH or PKCS#8), relative to the configuration file.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// The private key's passphrase, if it has one (best from the environment).
    #[serde(default)]
    pub private_key_passphrase: Option<String>,
    /// A password (best from the environment, `…__PASSWORD`).
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (trailing whitespace ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connect, authenticate and each SFTP request time out after this long.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The remote folder the partner leaves files in for the hub.
    #[serde(default)]
    pub inbox: Option<String>,
    /// Where picked-up files are moved; absent: they stay, and the ledger remembers them.
    #[serde(default)]
    pub done: Option<String>,
    /// The remote folder the hub uploads batch files to.
    #[serde(default)]
    pub outbox: Option<String>,
}

fn default_port() -> u16 {
    22
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for SftpSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpSection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_key_sha256", &self.host_key_sha256)
            .field("inbox", &self.inbox)
            .field("done", &self.done)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl Validate for SftpSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.host.trim().is_empty() {
            out.push(Invalid::new(join_key(prefix, "host"), "must not be empty"));
        }
        if self.user.trim().is_empty() {
            out.push(Invalid::new(join_key(prefix, "user"), "must not be empty"));
        }
        let fp_ok = self
            .host_key_sha256
            .strip_prefix("SHA256:")
            .is_some_and(|b| {
                b.len() == 43
                    && b.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
            });
        if !fp_ok {
            out.push(Invalid::new(
                join_key(prefix, "host_key_sha256"),
                "must be the server's host key fingerprint as `ssh-keygen -lf` prints it: SHA256: and 43 base64 characters",
            ));
        }
        let methods = [
            self.private_key_file.is_some(),
            self.password.is_some(),
            self.password_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if methods != 1 {
            out.push(Invalid::new(
                join_key(prefix, "private_key_file"),
                "set exactly one of private_key_file, password (from the environment) and password_file",
            ));
        }
        if !(1_000..=600_000).contains(&self.timeout_ms) {
            out.push(Invalid::new(
                join_key(prefix, "timeout_ms"),
                format!("{} is outside 1000..=600000", self.timeout_ms),
            ));
        }
        for (key, dir) in [
            ("inbox", &self.inbox),
            ("done", &self.done),
            ("outbox", &self.outbox),
        ] {
            if dir.as_deref().is_some_and(|d| d.trim().is_empty()) {
                out.push(Invalid::new(join_key(prefix, key), "must not be empty"));
            }
        }
        if self.done.is_some() && self.inbox.is_none() {
            out.push(Invalid::new(
                join_key(prefix, "done"),
                "a done folder needs an inbox to move files from",
            ));
        }
        out
    }
}

fn sftp_err(code: FileErrorCode, what: &str, e: impl std::fmt::Display) -> FileError {
    FileError::new(code, format!("{what}: {e}"))
}

fn failed(what: &str, e: impl std::fmt::Display) -> FileError {
    sftp_err(FileErrorCode::SftpFailed, what, e)
}

/// An SFTP request's failure: `SFTP_PERMISSION_DENIED` when the server says so (permanent for
/// that request), `SFTP_FAILED` otherwise. The server's message is left out: it may quote the
/// path, and so the file name.
fn remote_err(what: &str, e: russh_sftp::client::error::Error) -> FileError {
    use russh_sftp::client::error::Error;
    use russh_sftp::protocol::StatusCode;
    match e {
        Error::Status(s) if s.status_code == StatusCode::PermissionDenied => FileError::new(
            FileErrorCode::SftpPermissionDenied,
            format!("{what}: permission denied"),
        ),
        Error::Status(s) => FileError::new(
            FileErrorCode::SftpFailed,
            format!("{what}: {}", s.status_code),
        ),
        other => failed(what, other),
    }
}

/// Checks that `name` is a plain file name the hub may create on a partner's server: not
/// empty, at most 255 bytes, no `/` or `\\`, not hidden (so neither `.` nor `..`), no control
/// character, not ending in `.part`/`.tmp` (a partner takes those for uploads in progress).
/// `FILE_NAME_INVALID` otherwise; the detail says which rule, never the name.
pub fn plain_name(name: &str) -> Result<(), FileError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.starts_with('.') {
        Some("it is hidden or a relative folder (starts with `.`)")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.ends_with(".part") || name.ends_with(".tmp") {
        Some("it ends in .part or .tmp, which partners take for an upload in progress")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(FileError::new(
            FileErrorCode::NameInvalid,
            format!("the remote file name is refused: {why}"),
        )),
    }
}

/// Checks the server's host key against the pinned fingerprint.
struct Pinned {
    want: String,
    seen: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            // Host certificates are not pinned by fingerprint: refuse them.
            return Ok(false);
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = fp == self.want;
        *self.seen.lock().expect("not poisoned") = Some(fp);
        Ok(ok)
    }
}

/// A remote regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The name inside its folder.
    pub name: String,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
}

/// A connected, authenticated SFTP session.
pub struct SftpClient {
    sftp: SftpSession,
    handle: russh::client::Handle<Pinned>,
    timeout: Duration,
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// A remote name the hub accepts: no path separators, not hidden (a partner's upload in
/// progress is often `.name` or `name.part`/`name.tmp`).
fn pickable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.ends_with(".part")
        && !name.ends_with(".tmp")
}

impl SftpClient {
    /// Connects, checks the host key and authenticates. `base_dir` resolves relative key and
    /// password files.
    pub async fn connect(cfg: &SftpSection, base_dir: &FsPath) -> Result<Self, FileError> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(timeout * 4),
            ..Default::default()
        });
        let seen = Arc::new(Mutex::new(None));
        let handler = Pinned {
            want: cfg.host_key_sha256.clone(),
            seen: seen.clone(),
        };
        let addr = (cfg.host.clone(), cfg.port);
        let connected =
            tokio::time::timeout(timeout, russh::client::connect(config, addr, handler)).await;
        let mut handle = match connected {
            Err(_) => {
                return Err(FileError::new(
                    FileErrorCode::SftpConnectFailed,
                    format!(
                        "{}:{} did not answer within {timeout:?}",
                        cfg.host, cfg.port
                    ),
                ))
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let fp = seen.lock().expect("not poisoned").clone();
                return Err(match (e, fp) {
                    (russh::Error::UnknownKey, Some(fp)) => FileError::new(
                        FileErrorCode::SftpHostKeyMismatch,
                        format!(
                            "{}:{} presented host key {fp}, not the pinned {}",
                            cfg.host, cfg.port, cfg.host_key_sha256
                        ),
                    ),
                    (e, _) => sftp_err(
                        FileErrorCode::SftpConnectFailed,
                        &format!("{}:{}", cfg.host, cfg.port),
                        e,
                    ),
                });
            }
        };
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            }
        };
        let auth = async {
            if let Some(key_file) = &cfg.private_key_file {
                let key = russh::keys::load_secret_key(
                    resolve(key_file),
                    cfg.private_key_passphrase.as_deref(),
                )
                .map_err(|e| {
                    FileError::new(
                        FileErrorCode::ConfigInvalid,
                        format!("cannot load the SFTP private key: {e}"),
                    )
                })?;
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| failed("negotiating the RSA hash", e))?
                    .flatten();
                handle
                    .authenticate_publickey(
                        &cfg.user,
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
            } else {
                let password = match (&cfg.password, &cfg.password_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => std::fs::read_to_string(resolve(f))
                        .map_err(|e| {
                            FileError::new(
                                FileErrorCode::ConfigInvalid,
                                format!("cannot read the SFTP password file: {e}"),
                            )
                        })?
                        .trim_end()
                        .to_string(),
                    (None, None) => {
                        return Err(FileError::new(
                            FileErrorCode::ConfigInvalid,
                            "no SFTP private key or password is configured",
                        ))
                    }
                };
                handle.authenticate_password(&cfg.user, password).await
            }
            .map_err(|e| sftp_err(FileErrorCode::SftpAuthFailed, "authentication", e))
        };
        let result = tokio::time::timeout(timeout, auth).await.map_err(|_| {
            FileError::new(FileErrorCode::SftpAuthFailed, "authentication timed out")
        })??;
        if !result.success() {
            return Err(FileError::new(
                FileErrorCode::SftpAuthFailed,
                format!("the server refused user `{}`'s credentials", cfg.user),
            ));
        }
        let sftp = async {
            let channel = handle
                .channel_open_session()
                .await
                .map_err(|e| failed("opening a channel", e))?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| failed("starting the sftp subsystem", e))?;
            let sftp = SftpSession::new(channel.into_stream())
                .await
                .map_err(|e| failed("starting the SFTP session", e))?;
            sftp.set_timeout(timeout.as_secs().max(1));
            Ok::<_, FileError>(sftp)
        };
        let sftp = tokio::time::timeout(timeout, sftp).await.map_err(|_| {
            FileError::new(
                FileErrorCode::SftpFailed,
                "the SFTP session did not start in time",
            )
        })??;
        Ok(Self {
            sftp,
            handle,
            timeout,
        })
    }

    /// The regular files of a remote folder that may be picked up (hidden names and
    /// `*.part`/`*.tmp` uploads in progress are left alone), by name.
    pub async fn list(&self, dir: &str) -> Result<Vec<RemoteFile>, FileError> {
        let entries = self
            .sftp
            .read_dir(dir)
            .await
            .map_err(|e| failed(&format!("listing {dir}"), e))?;
        let mut out: Vec<RemoteFile> = entries
            .filter(|e| e.file_type().is_file() && pickable(&e.file_name()))
            .map(|e| {
                let m = e.metadata();
                RemoteFile {
                    name: e.file_name(),
                    size: m.size.unwrap_or(0),
                    mtime: m.mtime.unwrap_or(0),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streams a remote file into the store.
    pub async fn download(
        &self,
        path: &str,
        store: &FileStore,
        opts: &PutOptions,
    ) -> Result<FileMeta, FileError> {
        let file = self
            .sftp
            .open(path)
            .await
            .map_err(|e| failed(&format!("opening {path}"), e))?;
        let timeout = self.timeout;
        let stream = futures::stream::unfold(Some(file), move |state| async move {
            let mut file = state?;
            let mut buf = vec![0u8; 256 * 1024];
            match tokio::time::timeout(timeout, file.read(&mut buf)).await {
                Ok(Ok(0)) => None,
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Ok(Err(e)) => Some((Err(failed("reading", e)), None)),
                Err(_) => Some((
                    Err(FileError::new(
                        FileErrorCode::SftpFailed,
                        "reading timed out",
                    )),
                    None,
                )),
            }
        });
        store.put_stream(stream, opts).await
    }

    /// Uploads a stored file as `dir/name`: written as `dir/.name.part`, then renamed, so the
    /// partner never sees a partial file. An existing `dir/name` is replaced, so uploading the
    /// same name again (a retry) is harmless. `name` must be a plain name ([`plain_name`]:
    /// `FILE_NAME_INVALID` otherwise); a server that refuses the hub's access is
    /// `SFTP_PERMISSION_DENIED`. Details never name the file (names may be personal).
    pub async fn upload(
        &self,
        store: &FileStore,
        id: &FileId,
        dir: &str,
        name: &str,
    ) -> Result<(), FileError> {
        plain_name(name)?;
        let tmp = join(dir, &format!(".{name}.part"));
        let target = join(dir, name);
        let (_, mut source) = store.open(id).await?;
        let mut remote = self
            .sftp
            .create(&tmp)
            .await
            .map_err(|e| remote_err("creating the temporary file in the outbox", e))?;
        let written: Result<(), FileError> = async {
            while let Some(chunk) = source.next().await {
                let chunk = chunk?;
                tokio::time::timeout(self.timeout, remote.write_all(&chunk))
                    .await
                    .map_err(|_| FileError::new(FileErrorCode::SftpFailed, "writing timed out"))?
                    .map_err(|e| failed("writing", e))?;
            }
            tokio::time::timeout(self.timeout, remote.shutdown())
                .await
                .map_err(|_| FileError::new(FileErrorCode::SftpFailed, "closing timed out"))?
                .map_err(|e| failed("closing", e))?;
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = self.sftp.remove_file(&tmp).await;
            return Err(e);
        }
        if self.sftp.try_exists(&target).await.unwrap_or(false) {
            self.sftp
                .remove_file(&target)
                .await
                .map_err(|e| remote_err("replacing the earlier file of the same name", e))?;
        }
        self.sftp
            .rename(&tmp, &target)
            .await
            .map_err(|e| remote_err("renaming the uploaded file into place", e))?;
        Ok(())
    }

    /// Renames (moves) a remote file.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        self.sftp
            .rename(from, to)
            .await
            .map_err(|e| failed(&format!("moving {from}"), e))
    }

    /// Whether a remote path exists.
    pub async fn exists(&self, path: &str) -> Result<bool, FileError> {
        self.sftp
            .try_exists(path)
            .await
            .map_err(|e| failed(&format!("looking at {path}"), e))
    }

    /// Ends the session politely.
    pub async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// A file a pickup handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedFile {
    /// Stable for this remote file (`<job>/<name>/<size>/<mtime>`): a handler that may be called
    /// again after a crash uses it to recognise the repeat (e.g. as a partner message id).
    pub pickup_id: String,
    pub remote_name: String,
    pub file: FileMeta,
}

/// What one pickup run did.
#[derive(Debug, Default)]
pub struct PickupReport {
    /// Files handed over in this run.
    pub handed_over: Vec<PickedFile>,
    /// Files moved to the done folder in this run.
    pub moved: usize,
    /// Files skipped because an earlier run already handed them over.
    pub already_picked: usize,
    /// Files that failed this time (retried on the next run), with why.
    pub failed: Vec<(String, FileError)>,
    /// Another replica holds the job's lease: this run did nothing (or stopped early).
    pub not_leader: bool,
}

/// How long a pickup run holds its job's lease without renewing it (renewed before each file).
const LEASE_TTL: Duration = Duration::from_secs(600);

/// Picks batch files up from a partner's SFTP folder, once and only once.
///
/// For each remote file in `inbox` (known by name, size and modification time):
/// 1. unknown to the ledger: streamed into the file store (content-addressed, so a second
///    download after a crash stores nothing new), then claimed in the ledger (`claimed`);
/// 2. `claimed`: handed to the handler; once it succeeds, `handled`. A crash between the
///    handler's success and that record calls the handler again on the next run with the same
///    [`PickedFile::pickup_id`], which the handler uses to recognise the repeat; a handler that
///    fails is retried on the next run;
/// 3. `handled` and a done folder configured: moved there, then `moved`.
///
/// Several replicas may run the same job: a run holds the job's lease (`hub_leases`, name
/// `sftp-pickup/<job>`, renewed before each file) so one replica works on a job at a time, and
/// the claim itself is atomic.
pub struct Pickup {
    pub job: String,
    /// This replica's name for the lease (the hub's instance id).
    pub holder: String,
    pub sftp: SftpSection,
    pub base_dir: PathBuf,
    pub store: FileStore,
    pub state: StateStore,
    pub put: PutOptions,
}

impl Pickup {
    /// One run: take the job's lease, connect, pick up what is new, disconnect, give the
    /// lease back.
    pub async fn run_once<F, Fut>(&self, handler: F) -> Result<PickupReport, FileError>
    where
        F: FnMut(PickedFile) -> Fut,
        Fut: std::future::Future<Output = Result<(), FileError>>,
    {
        self.run_once_matching(&|_: &str| true, handler).await
    }

    /// [`Pickup::run_once`] for the files whose name `matches` (a batch's name pattern); the
    /// others are left alone, unrecorded.
    pub async fn run_once_matching<F, Fut>(
        &self,
        matches: &(dyn Fn(&str) -> bool + Sync),
        mut handler: F,
    ) -> Result<PickupReport, FileError>
    where
        F: FnMut(PickedFile) -> Fut,
        Fut: std::future::Future<Output = Result<(), FileError>>,
    {
        let inbox = self.sftp.inbox.as_deref().ok_or_else(|| {
            FileError::new(
                FileErrorCode::ConfigInvalid,
                "the SFTP section has no inbox",
            )
        })?;
        let lease = format!("sftp-pickup/{}", self.job);
        let mut report = PickupReport::default();
        if !self.lease(&lease).await? {
            report.not_leader = true;
            return Ok(report);
        }
        let result = self
            .run_leased(&lease, inbox, matches, &mut handler, &mut report)
            .await;
        let _ = self.state.release_lease(&lease, &self.holder).await;
        result.map(|()| report)
    }

    async fn lease(&self, lease: &str) -> Result<bool, FileError> {
        self.state
            .acquire_lease(lease, &self.holder, LEASE_TTL)
            .await
            .map_err(|e| FileError::new(FileErrorCode::StoreUnavailable, e.to_string()))
    }

    async fn run_leased<F, Fut>(
        &self,
        lease: &str,
        inbox: &str,
        matches: &(dyn Fn(&str) -> bool + Sync),
        handler: &mut F,
        report: &mut PickupReport,
    ) -> Result<(), FileError>
    where
        F: FnMut(PickedFile) -> Fut,
        Fut: std::future::Future<Output = Result<(), FileError>>,
    {
        let client = SftpClient::connect(&self.sftp, &self.base_dir).await?;
        let files = match client.list(inbox).await {
            Ok(f) => f,
            Err(e) => {
                client.close().await;
                return Err(e);
            }
        };
        for rf in files.into_iter().filter(|f| matches(&f.name)) {
            // Renewed before each file; lost (another replica took over after an expiry): stop.
            match self.lease(lease).await {
                Ok(true) => {}
                Ok(false) => {
                    report.not_leader = true;
                    break;
                }
                Err(e) => {
                    client.close().await;
                    return Err(e);
                }
            }
            if let Err(e) = self.one(&client, inbox, &rf, handler, report).await {
                tracing::warn!(job = %self.job, code = e.code(), error = %e.detail, "SFTP pickup of one file failed; retried next run");
                report.failed.push((rf.name.clone(), e));
            }
        }
        client.close().await;
        Ok(())
    }

    async fn one<F, Fut>(
        &self,
        client: &SftpClient,
        inbox: &str,
        rf: &RemoteFile,
        handler: &mut F,
        report: &mut PickupReport,
    ) -> Result<(), FileError>
    where
        F: FnMut(PickedFile) -> Fut,
        Fut: std::future::Future<Output = Result<(), FileError>>,
    {
        let state_err = |e: hub_state::StateError| {
            FileError::new(FileErrorCode::StoreUnavailable, e.to_string())
        };
        let (size, mtime) = (rf.size as i64, i64::from(rf.mtime));
        let path = join(inbox, &rf.name);
        let mut known = self
            .state
            .file_pickup(&self.job, &rf.name, size, mtime)
            .await
            .map_err(state_err)?;
        if known.is_none() {
            let meta = client.download(&path, &self.store, &self.put).await?;
            // Referenced for good before the ledger names it: the same content held
            // provisional by a failed push is never swept from under the pickup (`sweep`).
            self.state
                .reference_files(&[meta.id.to_string()])
                .await
                .map_err(state_err)?;
            self.state
                .claim_file_pickup(&self.job, &rf.name, size, mtime, &meta.id.to_string())
                .await
                .map_err(state_err)?;
            known = self
                .state
                .file_pickup(&self.job, &rf.name, size, mtime)
                .await
                .map_err(state_err)?;
        }
        let Some(mut rec) = known else {
            return Err(FileError::new(
                FileErrorCode::StoreUnavailable,
                "the pickup ledger lost a claim",
            ));
        };
        if rec.state == "claimed" {
            let id = FileId::parse(&rec.file_id)?;
            let file = match self.store.head(&id).await {
                Ok(f) => f,
                // Claimed, then gone from the store (removed by hand, or swept as a failed
                // push's file in the instant before this pickup referenced it): the remote
                // file is still in the inbox, so it is stored again, under the same id.
                Err(e) if e.code == FileErrorCode::NotFound => {
                    let meta = client.download(&path, &self.store, &self.put).await?;
                    self.state
                        .reference_files(&[meta.id.to_string()])
                        .await
                        .map_err(state_err)?;
                    meta
                }
                Err(e) => return Err(e),
            };
            let picked = PickedFile {
                pickup_id: format!("{}/{}/{}/{}", self.job, rf.name, size, mtime),
                remote_name: rf.name.clone(),
                file,
            };
            handler(picked.clone()).await?;
            self.state
                .advance_file_pickup(&self.job, &rf.name, size, mtime, "handled")
                .await
                .map_err(state_err)?;
            tracing::info!(job = %self.job, file = %picked.file.id, size = picked.file.size, "SFTP batch file picked up");
            report.handed_over.push(picked);
            rec.state = "handled".into();
        } else {
            report.already_picked += 1;
        }
        if rec.state == "handled" {
            if let Some(done) = &self.sftp.done {
                let target = join(done, &rf.name);
                if client.exists(&target).await? {
                    // An earlier copy of the same name: keep both, the older one renamed.
                    let aside = join(
                        done,
                        &format!(
                            "{}.{}",
                            rf.name,
                            chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")
                        ),
                    );
                    client.rename(&target, &aside).await?;
                }
                client.rename(&path, &target).await?;
                self.state
                    .advance_file_pickup(&self.job, &rf.name, size, mtime, "moved")
                    .await
                    .map_err(state_err)?;
                report.moved += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_names_every_problem() {
        let s: SftpSection = toml::from_str(
            "host = \"\"\nuser = \"hub\"\nhost_key_sha256 = \"MD5:aa\"\npassword = \"p\"\npassword_file = \"f\"\ntimeout_ms = 10\ndone = \"/done\"\n",
        )
        .unwrap();
        let keys: Vec<String> = s.validate("sftp").into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "sftp.host",
                "sftp.host_key_sha256",
                "sftp.private_key_file",
                "sftp.timeout_ms",
                "sftp.done"
            ]
        );
        assert!(!format!("{s:?}").contains("password = \"p\""));
        assert!(!format!("{s:?}").contains("\"p\""));
    }

    #[test]
    fn only_plain_names_are_uploaded() {
        for n in ["a.csv", "DZ_20261203.csv", "张三 材料.pdf", "a..b"] {
            assert!(plain_name(n).is_ok(), "{n}");
        }
        let long = "a".repeat(256);
        for n in [
            "",
            ".",
            "..",
            "../a.csv",
            "a/b",
            "a\\b",
            ".hidden",
            "a\nb",
            "a\u{7f}",
            "a.part",
            "b.tmp",
            long.as_str(),
        ] {
            let e = plain_name(n).unwrap_err();
            assert_eq!(e.code, FileErrorCode::NameInvalid, "{n:?}");
            assert!(n.len() < 3 || !e.detail.contains(n), "{n:?}");
        }
    }

    #[test]
    fn uploads_in_progress_are_not_picked() {
        for n in ["a.csv", "RECON_20261203.txt"] {
            assert!(pickable(n), "{n}");
        }
        for n in [".a.csv", "a.csv.part", "a.tmp", "", "x/y"] {
            assert!(!pickable(n), "{n}");
        }
    }
}
