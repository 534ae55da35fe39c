//! `hub serve` with its stderr appended to `hub.log` beside its configuration, for the tests
//! that run a hub long or restart it (egress, poller, transports): a long run must not fill a
//! pipe nobody reads, and a restarted hub continues the same log. Killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{wait_for_status, HUB};

pub struct LoggedHub {
    pub child: Child,
}

impl Drop for LoggedHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hub serve --config <config>` with no `HUB_*` variable of the test's environment but
/// those of `env`; does not wait.
pub fn spawn(config: &Path, env: &[(&str, &str)]) -> LoggedHub {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("hub.log"))
        .unwrap();
    let mut cmd = Command::new(HUB);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let child = cmd
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    LoggedHub { child }
}

/// Starts the hub and waits until it is ready (its topics exist): records produced before the
/// topic is created would not be read by a subscription made before it. The admin listener is
/// the first `listen = "…"` of the configuration.
pub async fn start(config: &Path, env: &[(&str, &str)]) -> LoggedHub {
    let hub = spawn(config, env);
    let text = std::fs::read_to_string(config).unwrap();
    let admin = text
        .split("listen = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    wait_for_status(
        &format!("http://{admin}/readyz"),
        200,
        Duration::from_secs(60),
    )
    .await;
    hub
}

/// SIGTERM, and wait: the hub drains and leaves its consumer groups.
pub fn stop(mut hub: LoggedHub) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hub.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    hub.child.wait().unwrap();
}
