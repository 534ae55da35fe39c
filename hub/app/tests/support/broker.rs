//! A broker of one test alone, for the tests that freeze or stop it (the shared test broker
//! cannot be stopped under other tests): the pinned Tansu binary that `ops/broker.sh install`
//! puts under `~/.cache/shanghai-hub` (or `HUB_TEST_TANSU`), memory storage, a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::free_port;

pub struct PrivateBroker {
    pub child: Child,
    pub bootstrap: String,
}

impl PrivateBroker {
    /// Starts it with its log in `dir/tansu.log`.
    pub fn start(dir: &Path) -> Self {
        let tansu = std::env::var("HUB_TEST_TANSU").unwrap_or_else(|_| {
            format!(
                "{}/.cache/shanghai-hub/tansu-0.6.0/bin/tansu",
                std::env::var("HOME").unwrap()
            )
        });
        let port = free_port();
        let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
        let child = Command::new(tansu)
            .args([
                "broker",
                "--cluster-id",
                "hub-outage-test",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .current_dir(dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the pinned Tansu is installed (ops/broker.sh install)");
        Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        }
    }

    /// SIGSTOP freezes it (connections stay open, nothing answers), SIGCONT thaws it.
    pub fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.signal(Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of a process, from /proc (clock ticks of 10 ms).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
