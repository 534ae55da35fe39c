//! Debian's OpenSSH server for the SFTP tests, started on a free loopback port with its own
//! configuration, host key and user key in a temporary folder (`apt-get install
//! openssh-server`; `HUB_TEST_SSHD` may name another sshd). It serves the folders `inbox`,
//! `done` and `outbox` of that temporary folder. Shared by hub-files' tests and the hub's
//! (`hub/app/tests/files_sftp.rs` includes this file by path).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Sshd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `SHA256:…` of the host key, as `host_key_sha256` pins it.
    pub fingerprint: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// A path inside the server's folder (`inbox/…`, `done/…`, `outbox/…`, `user_key`).
    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }
}

/// A new ed25519 key pair at `path` and `path.pub`, without a passphrase.
pub fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hub-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(ok.success());
}

fn fingerprint(pub_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_key)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// The user the tests log in as: the one running them.
pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts the server and waits until it listens.
pub async fn start() -> Sshd {
    let exe = std::env::var("HUB_TEST_SSHD").unwrap_or_else(|_| "/usr/sbin/sshd".into());
    assert!(
        Path::new(&exe).exists(),
        "{exe} is missing: apt-get install openssh-server (or set HUB_TEST_SSHD)"
    );
    // OpenSSH wants its privilege-separation folder when started as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("user_key"));
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    for sub in ["inbox", "done", "outbox"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = Command::new(&exe)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .spawn()
        .expect("sshd starts");
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        up,
        "sshd did not listen on {port}: {}",
        std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
    );
    let fingerprint = fingerprint(&d.join("host_key.pub"));
    Sshd {
        child,
        dir,
        port,
        fingerprint,
    }
}
