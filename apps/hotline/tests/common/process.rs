//! The app as a child process (`hotline-app serve`), for the tests that kill and restart it.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_hotline-app");

/// `hotline-app serve`, its log (JSON lines on stderr) read continuously so the child never
/// blocks on a full pipe, and handed over line by line.
pub struct App {
    child: Child,
    log: mpsc::UnboundedReceiver<String>,
}

impl App {
    pub fn start(config: &std::path::Path) -> Self {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("hotline-app starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        Self { child, log }
    }

    /// Reads the log until `n` lines contain `needle`; fails if the process ends or says
    /// nothing for a minute.
    pub async fn wait_log(&mut self, needle: &str, n: usize) {
        let mut seen = 0;
        while seen < n {
            match tokio::time::timeout(Duration::from_secs(60), self.log.recv()).await {
                Ok(Some(l)) if l.contains(needle) => seen += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("hotline-app ended after {seen} lines with {needle}"),
                Err(_) => {
                    panic!("hotline-app logged nothing for 60 s ({seen} lines with {needle})")
                }
            }
        }
    }

    pub fn signal(&self, s: Signal) {
        let pid = self.child.id().expect("still running");
        kill(Pid::from_raw(pid as i32), s).expect("signal delivered");
    }

    pub async fn exit_status(mut self) -> std::process::ExitStatus {
        self.child.wait().await.unwrap()
    }
}
